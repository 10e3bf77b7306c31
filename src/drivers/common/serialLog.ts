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

export interface ConsoleSeen {
  /** The last heartbeat the guest printed, if any. */
  heartbeat?: number;
  /** How much the guest printed in all (the log's size): it grows while the guest boots, too. */
  bytes: number;
}

/** What a serial log shows of its guest; undefined when the file is missing. */
export async function readConsole(file: string): Promise<ConsoleSeen | undefined> {
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
    const heartbeat = lastHeartbeat(buf.toString('latin1'));
    return heartbeat === undefined ? { bytes: size } : { heartbeat, bytes: size };
  } finally {
    await fh.close();
  }
}


/** The guest signal of a VM whose console is `console` (as readConsole saw it). Pure. */
export function guestSignal(console: ConsoleSeen | undefined): { heartbeat?: number; consoleBytes?: number } {
  if (!console) return {};
  return { ...(console.heartbeat !== undefined ? { heartbeat: console.heartbeat } : {}), consoleBytes: console.bytes };
}
