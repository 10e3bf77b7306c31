// QEMU processes the driver supervises: started detached (their own session, so they outlive
// the agent), found again from their pid file, and ended.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The pid of the live QEMU that owns `qmpSocket`, from its pid file. The command line must name
 * the socket, so a recycled pid of an unrelated process is never taken for the VM.
 */
export async function findQemu(pidFile: string, qmpSocket: string): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await readFile(pidFile, 'utf8')).trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(qmpSocket)) return undefined;
    // A zombie has exited already; it only waits for its parent to reap it.
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) Z /.test(stat)) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

export interface Spawned {
  pid: number;
  /** Resolves with the exit code when the process ends while this agent still watches it. */
  exited: Promise<number | null>;
}

/** Start QEMU in its own session with stdout/stderr appended to `logFile`. */
export function spawnDetached(binary: string, args: string[], logFile: string): Spawned {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd] });
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(-1));
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${binary}`);
    return { pid: child.pid, exited };
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function terminate(pid: number, graceMs = 5000): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && !(await isZombie(pid))) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      await waitGone(pid, 5000);
      return;
    }
    await sleep(50);
  }
}

/** Resolves true when the process ended within `timeoutMs`. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && !(await isZombie(pid))) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

async function isZombie(pid: number): Promise<boolean> {
  try {
    return /^\d+ \(.*\) Z /.test(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
