// The guest's serial console log: the driver reads the guest's heartbeat from it.
import { open } from 'node:fs/promises';

const HEARTBEAT = /vmove-heartbeat (\d+)/g;
/** Enough to hold several heartbeat lines even when the guest prints other things between them. */
const TAIL_BYTES = 16 * 1024;

/** The last `vmove-heartbeat N` in `text`, if any. Pure. */
export function lastHeartbeat(text: string): number | undefined {
  let last: number | undefined;
  for (const m of text.matchAll(HEARTBEAT)) last = Number(m[1]);
  return last;
}

/** The last heartbeat in the tail of a serial log; undefined when the file or a heartbeat is missing. */
export async function readHeartbeat(file: string): Promise<number | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const { size } = await fh.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, size - length);
    return lastHeartbeat(buf.toString('latin1'));
  } finally {
    await fh.close();
  }
}
