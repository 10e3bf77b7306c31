// Which TCP connections carried a stream: `ss` sampled while something runs, keeping every
// established connection that touches one of the given ports, with both ends and the process
// that holds it (root sees every process's sockets).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TcpConnection {
  local: string;
  peer: string;
  /** The process on the local end, e.g. qemu-system-x86 (empty when ss cannot tell). */
  process: string;
}

/** Splits "127.0.0.3:49152" or "[fd00::3]:49152" into address and port. */
export function endpointOf(text: string): { address: string; port: number } {
  const i = text.lastIndexOf(':');
  return { address: text.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(text.slice(i + 1)) };
}

/** Established connections now, one per end (ss -Htnp). */
export async function establishedNow(): Promise<TcpConnection[]> {
  const { stdout } = await run('ss', ['-Htnp', 'state', 'established'], { encoding: 'utf8' });
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 4)
    .map(([, , local, peer, ...rest]) => ({ local: local!, peer: peer!, process: /users:\(\("([^"]+)"/.exec(rest.join(' '))?.[1] ?? '' }));
}

/** Samples every `intervalMs` until stopped; keeps each distinct connection touching `ports`. */
export function sampleConnections(ports: (port: number) => boolean, intervalMs = 50): { stop(): Promise<TcpConnection[]> } {
  const seen = new Map<string, TcpConnection>();
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const c of await establishedNow()) {
        if (ports(endpointOf(c.local).port) || ports(endpointOf(c.peer).port)) seen.set(`${c.local} ${c.peer}`, c);
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return [...seen.values()];
    },
  };
}
