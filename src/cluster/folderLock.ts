// An exclusive lock on an instance folder across processes (two `make cluster` at once in
// one checkout), held in a file that names its owner so a dead owner's lock is taken over.
import { openSync, closeSync, readFileSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { processExists } from './processes';
import { setTimeout as sleep } from 'node:timers/promises';

export async function withFolderLock<T>(dir: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, '.lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(safeRead(file), 10);
    // An empty file is a lock being taken right now (created, pid not yet written).
    if (Number.isInteger(owner) && !processExists(owner)) {
      rmSync(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${file} is held by process ${owner} (another vmove cluster command?)`);
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    if (safeRead(file).trim() === String(process.pid)) rmSync(file, { force: true });
  }
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
