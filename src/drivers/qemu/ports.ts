// Ports for incoming migration streams and NBD exports, from the host's configured range.
import net from 'node:net';

/** Ports of `range` (inclusive) in order, skipping `taken`. Pure. */
export function candidatePorts(range: [number, number], taken: ReadonlySet<number>): number[] {
  const [lo, hi] = range;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
    throw new Error(`invalid migration port range ${lo}-${hi}`);
  }
  const out: number[] = [];
  for (let p = lo; p <= hi; p++) if (!taken.has(p)) out.push(p);
  return out;
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * `count` distinct ports of the range that can be bound on `host` now. QEMU binds them a moment
 * later; a port taken in between makes that QEMU command fail, and the caller retries.
 */
export async function freePorts(host: string, range: [number, number], taken: ReadonlySet<number>, count: number): Promise<number[]> {
  const found: number[] = [];
  for (const port of candidatePorts(range, taken)) {
    if (await canBind(host, port)) found.push(port);
    if (found.length === count) return found;
  }
  throw new Error(`no ${count} free ports in ${range[0]}-${range[1]} on ${host}`);
}
