// The sim's migration stream: newline-delimited JSON frames over a real TCP connection from
// the source driver to the target's incoming listener. Memory pages are not sent (the
// convergence model accounts for them); what crosses the wire is what a target needs to run
// the VM — disk blocks for block migration and the guest state at switch-over — plus
// progress frames, so a dead peer breaks the connection the way it breaks a QEMU stream.
import type { Socket } from 'node:net';

export type SourceFrame =
  | { type: 'hello'; vmId: string; uid: string; blockMigration: boolean }
  | { type: 'disk'; name: string; block: string }
  | { type: 'progress'; memoryTransferredBytes: number; diskTransferredBytes: number; iteration: number }
  | { type: 'switchover'; heartbeat: number; cpu: number; memoryBytes: number }
  | { type: 'cancel'; reason: string };

export type TargetFrame = { type: 'ready' } | { type: 'done' } | { type: 'refused'; message: string };

const MAX_FRAME_BYTES = 1 << 20;

/** Frames in and out of one socket; `onClose` fires once, with the error that ended it if any. */
export class FrameChannel<In, Out> {
  private buffer = '';
  private closed = false;
  private frameHandler: (frame: In) => void = () => undefined;
  private closeHandler: (err?: Error) => void = () => undefined;

  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (err) => this.finish(err));
    socket.on('close', () => this.finish());
  }

  onFrame(handler: (frame: In) => void): void {
    this.frameHandler = handler;
  }

  onClose(handler: (err?: Error) => void): void {
    this.closeHandler = handler;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(frame: Out): void {
    if (!this.closed) this.socket.write(`${JSON.stringify(frame)}\n`);
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    if (this.buffer.length > MAX_FRAME_BYTES) {
      this.socket.destroy(new Error('sim migration stream: frame too large'));
      return;
    }
    let nl;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      let frame: In;
      try {
        frame = JSON.parse(line) as In;
      } catch {
        this.socket.destroy(new Error('sim migration stream: malformed frame'));
        return;
      }
      this.frameHandler(frame);
    }
  }

  private finish(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeHandler(err);
  }
}

/** `tcp:HOST:PORT` → host and port. */
export function parseTcpUri(uri: string): { host: string; port: number } {
  const m = /^tcp:(\[[^\]]+\]|[^:]+):(\d+)$/.exec(uri);
  if (!m) throw new Error(`unsupported migration URI ${uri} (sim expects tcp:HOST:PORT)`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}
