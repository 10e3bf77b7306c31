// libvirt's RPC over a unix socket: length-prefixed XDR messages with a six-word header.
// One connection carries many calls at once (each has its own serial; libvirtd answers them
// from its worker pool in any order), so a long call such as a peer-to-peer migration never
// holds up the status polls that run beside it.
import net from 'node:net';
import { DriverError } from '../driver';
import { XdrReader, XdrWriter } from './xdr';

export const REMOTE_PROGRAM = 0x20008086;
const REMOTE_PROTOCOL_VERSION = 1;
/** libvirt refuses messages above 32 MiB (VIR_NET_MESSAGE_MAX); so do we. */
const MESSAGE_MAX = 32 * 1024 * 1024;
const HEADER_BYTES = 24;

/** virNetMessageType; type 2 (asynchronous events) never comes: vmove polls, it does not subscribe. */
const MessageType = { Call: 0, Reply: 1 } as const;
const MessageStatus = { Ok: 0, Error: 1 } as const;

/** virErrorNumber values vmove tells apart. */
export const VirErr = {
  NoConnect: 5,
  OperationFailed: 9,
  SystemError: 38,
  Rpc: 39,
  NoDomain: 42,
  OperationInvalid: 55,
  ConfigUnsupported: 67,
  OperationTimeout: 68,
  OperationAborted: 78,
  AgentUnresponsive: 86,
} as const;

/** Errors where a later retry may succeed: a lost connection, a busy domain, an I/O hiccup. */
const TRANSIENT_CODES = new Set<number>([VirErr.NoConnect, VirErr.SystemError, VirErr.Rpc, VirErr.OperationTimeout, VirErr.AgentUnresponsive]);

/** An error libvirtd answered with (`code` is a virErrorNumber, `domain` a virErrorDomain). */
export class LibvirtError extends DriverError {
  constructor(
    message: string,
    readonly code: number,
    readonly domain: number,
  ) {
    super(message, TRANSIENT_CODES.has(code));
  }
}

/** libvirt answered with the error `code` (a VirErr). */
export const isCode = (err: unknown, code: number): boolean => err instanceof LibvirtError && err.code === code;

/** The socket to libvirtd broke or closed: every call in flight fails with this. */
export class LibvirtConnectionError extends DriverError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, true, options);
  }
}

interface Pending {
  proc: number;
  resolve: (body: XdrReader) => void;
  reject: (err: Error) => void;
}

function decodeError(r: XdrReader): LibvirtError {
  const code = r.int();
  const domain = r.int();
  const message = r.optString();
  // The rest (level, domain and network references, extra strings and ints) only repeats
  // what the message already says.
  return new LibvirtError(message ?? `libvirt error ${code}`, code, domain);
}

export class LibvirtRpc {
  private serial = 1;
  private readonly pending = new Map<number, Pending>();
  private inbox: Buffer = Buffer.alloc(0);
  private closedWith: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.fail(new LibvirtConnectionError(`libvirt socket error: ${err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new LibvirtConnectionError('libvirt connection closed')));
  }

  static connect(socketPath: string, timeoutMs = 10_000): Promise<LibvirtRpc> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path: socketPath });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new LibvirtConnectionError(`no answer from libvirtd at ${socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new LibvirtRpc(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new LibvirtConnectionError(`cannot connect to libvirtd at ${socketPath}: ${err.message}`, { cause: err }));
      });
    });
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** Sends one call and resolves with the reply's body (reject with LibvirtError on an error reply). */
  call(proc: number, args?: (w: XdrWriter) => void): Promise<XdrReader> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const serial = this.serial++;
    const w = new XdrWriter()
      .uint(0) // length, patched below
      .uint(REMOTE_PROGRAM)
      .uint(REMOTE_PROTOCOL_VERSION)
      .int(proc)
      .int(MessageType.Call)
      .uint(serial)
      .int(MessageStatus.Ok);
    args?.(w);
    const message = w.toBuffer();
    message.writeUInt32BE(message.length, 0);
    return new Promise((resolve, reject) => {
      this.pending.set(serial, { proc, resolve, reject });
      this.socket.write(message);
    });
  }

  close(): void {
    this.fail(new LibvirtConnectionError('libvirt connection closed by vmove'));
  }

  private fail(err: Error): void {
    if (!this.closedWith) this.closedWith = err;
    this.socket.destroy();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private receive(chunk: Buffer): void {
    this.inbox = this.inbox.length === 0 ? chunk : Buffer.concat([this.inbox, chunk]);
    while (this.inbox.length >= 4) {
      const length = this.inbox.readUInt32BE(0);
      if (length < 4 + HEADER_BYTES || length > MESSAGE_MAX) {
        this.fail(new LibvirtConnectionError(`libvirt sent a message of impossible length ${length}`));
        return;
      }
      if (this.inbox.length < length) return;
      const message = this.inbox.subarray(4, length);
      this.inbox = this.inbox.subarray(length);
      this.dispatch(new XdrReader(message));
    }
  }

  private dispatch(r: XdrReader): void {
    const prog = r.uint();
    r.uint(); // version
    r.int(); // procedure
    const type = r.int();
    const serial = r.uint();
    const status = r.int();
    // Keepalive pings (another program) only come to clients that ask for them; events only
    // to clients that subscribe. vmove does neither.
    if (prog !== REMOTE_PROGRAM || type !== MessageType.Reply) return;
    const p = this.pending.get(serial);
    if (!p) return;
    this.pending.delete(serial);
    try {
      if (status === MessageStatus.Ok) p.resolve(r);
      else if (status === MessageStatus.Error) p.reject(decodeError(r));
      else p.reject(new LibvirtConnectionError(`libvirt answered procedure ${p.proc} with unexpected status ${status}`));
    } catch (err) {
      p.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
