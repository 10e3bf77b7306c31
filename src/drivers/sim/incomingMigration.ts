// Target side of a simulated live migration: a TCP listener on a port of the host's migration
// range, accepting one stream for one VM. At switch-over the VM's guest state (heartbeat,
// resources) arrives and the VM waits, paused, for completeIncoming. If the stream breaks
// first, the incoming VM disappears — as a QEMU started with -incoming exits.
import { createServer, type Server, type Socket } from 'node:net';
import { componentLogger } from '../../log';
import { DriverError, type HostConfig } from '../driver';
import { FrameChannel, type SourceFrame, type TargetFrame } from './migrationWire';
import { decodeHeader, simDiskPath, writeSimDisk } from './simDisk';
import type { SimVmStore } from './vmStore';

const log = componentLogger('sim-incoming');

export interface IncomingDeps {
  host: HostConfig;
  store: SimVmStore;
  now: () => number;
  /** The VM's incoming state ended (handed over or failed); the listener is closed. */
  ended: (vmId: string) => void;
}

export class IncomingListener {
  private channel?: FrameChannel<SourceFrame, TargetFrame>;
  private work: Promise<void> = Promise.resolve();
  private ended = false;

  private constructor(
    private readonly deps: IncomingDeps,
    readonly vmId: string,
    private readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listen on `port` when given (re-adopting after a restart), else on the first free port of the range. */
  static async open(deps: IncomingDeps, vmId: string, port?: number): Promise<IncomingListener> {
    const [first, last] = deps.host.migrationPorts;
    const candidates = port !== undefined ? [port] : Array.from({ length: last - first + 1 }, (_, i) => first + i);
    for (const p of candidates) {
      const server = createServer();
      const bound = await new Promise<boolean>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(false) : reject(err)));
        server.listen({ host: deps.host.migrationAddress, port: p, exclusive: true }, () => resolve(true));
      });
      if (bound) return new IncomingListener(deps, vmId, server, p);
    }
    throw new DriverError(`no free migration port in ${first}-${last} on ${deps.host.nodeName} (busy)`, true);
  }

  close(): void {
    this.server.close();
    this.channel?.destroy();
  }

  private accept(socket: Socket): void {
    if (this.channel && !this.channel.isClosed) {
      socket.destroy();
      return;
    }
    const channel = new FrameChannel<SourceFrame, TargetFrame>(socket);
    let accepted = false;
    channel.onFrame((frame) => {
      this.work = this.work.then(() => this.handle(channel, frame, () => (accepted = true))).catch((err: unknown) => {
        log.warn({ err, vmId: this.vmId }, 'incoming migration failed');
        channel.destroy();
      });
    });
    channel.onClose(() => {
      if (accepted && !this.ended) void this.work.then(() => this.fail('migration stream ended before switch-over'));
    });
    this.channel = channel;
  }

  private async handle(channel: FrameChannel<SourceFrame, TargetFrame>, frame: SourceFrame, accept: () => void): Promise<void> {
    const rec = this.deps.store.get(this.vmId);
    switch (frame.type) {
      case 'hello': {
        if (frame.vmId !== this.vmId || !rec || rec.state !== 'Incoming' || rec.spec.uid !== frame.uid) {
          channel.send({ type: 'refused', message: `${this.deps.host.nodeName} does not expect VM ${frame.vmId} (uid ${frame.uid})` });
          channel.close();
          return;
        }
        accept();
        channel.send({ type: 'ready' });
        return;
      }
      case 'disk': {
        if (!rec) return;
        const spec = rec.spec.disks.find((d) => d.name === frame.name && d.storage === 'Local');
        if (!spec) throw new Error(`unexpected disk ${frame.name}`);
        const header = decodeHeader(Buffer.from(frame.block, 'base64'), `disk ${frame.name} of the migration stream`);
        await writeSimDisk(simDiskPath(this.deps.host, this.vmId, spec), { ...header, origin: 'copy', sizeBytes: spec.sizeBytes });
        return;
      }
      case 'progress':
        return;
      case 'switchover': {
        if (!rec || rec.state !== 'Incoming') return;
        rec.heartbeatBase = frame.heartbeat;
        rec.cpu = frame.cpu;
        rec.memoryBytes = frame.memoryBytes;
        rec.state = 'Paused';
        rec.runningSince = undefined;
        rec.incoming = undefined;
        await this.deps.store.persist(this.vmId);
        this.ended = true;
        channel.send({ type: 'done' });
        this.server.close();
        this.deps.ended(this.vmId);
        return;
      }
      case 'cancel':
        await this.fail(`source cancelled the migration: ${frame.reason}`);
        return;
    }
  }

  private async fail(why: string): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.close();
    const rec = this.deps.store.get(this.vmId);
    if (rec?.state === 'Incoming') {
      log.info({ vmId: this.vmId, node: this.deps.host.nodeName, why }, 'incoming migration failed; the incoming VM is gone');
      await this.deps.store.delete(this.vmId);
    }
    this.deps.ended(this.vmId);
  }
}
