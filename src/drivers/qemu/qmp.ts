// A QMP client over a unix socket, written from QEMU's QMP specification (docs/interop/qmp-spec):
// the server greets with {"QMP": {...}}, the client leaves negotiation mode with
// qmp_capabilities, then sends {"execute", "arguments", "id"} and gets {"return"|"error", "id"};
// asynchronous {"event", "data", "timestamp"} messages may arrive at any time. Messages are JSON
// objects, one per line.
//
// The client connects lazily and reconnects on the next command after the socket drops (QEMU
// restarted, the agent's connection was reset). Commands in flight when it drops fail with a
// transient QmpDisconnectedError; the caller decides whether re-sending is safe.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { componentLogger } from '../../log';
import { setTimeout as sleep } from 'node:timers/promises';

const log = componentLogger('qmp');

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** An error QEMU answered a command with. */
export class QmpCommandError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`${command}: ${desc}`);
    this.name = 'QmpCommandError';
  }
}

/** Commands that fail because there is nothing to undo are fine during cleanup. */
export function ignoreQmp(err: unknown): void {
  if (!(err instanceof QmpCommandError)) throw err;
}

/** The socket could not be reached, closed, or a command timed out: trying again may help. */
export class QmpDisconnectedError extends Error {
  readonly transient = true;
  constructor(message: string) {
    super(message);
    this.name = 'QmpDisconnectedError';
  }
}

export interface QmpClientOptions {
  /** How long to keep retrying to connect while the socket does not exist or refuses (QEMU starting). */
  connectTimeoutMs?: number;
  /** Default per-command timeout. */
  commandTimeoutMs?: number;
}

type Message = Record<string, unknown>;

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Splits a byte stream into JSON messages, one per line (QEMU ends lines with \r\n). */
export class QmpLineDecoder {
  private buffer = '';

  push(chunk: string): Message[] {
    this.buffer += chunk;
    const out: Message[] = [];
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line === '') continue;
      const parsed: unknown = JSON.parse(line);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) out.push(parsed as Message);
    }
    return out;
  }
}

/**
 * One QMP session to one QEMU process. Emits 'event' (QmpEvent) for every asynchronous event,
 * across reconnects.
 */
export class QmpClient extends EventEmitter<{ event: [QmpEvent] }> {
  private socket: net.Socket | undefined;
  private connecting: Promise<net.Socket> | undefined;
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private closedByUser = false;
  private readonly connectTimeoutMs: number;
  private readonly commandTimeoutMs: number;

  constructor(
    readonly socketPath: string,
    opts: QmpClientOptions = {},
  ) {
    super();
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 30_000;
  }

  get connected(): boolean {
    return this.socket !== undefined;
  }

  /** Run a command; resolves with its "return" value. */
  async execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    const socket = await this.connect();
    const id = `vmove-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpDisconnectedError(`${command}: no answer from QEMU within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      socket.write(JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }) + '\n');
    });
  }

  /** Resolves with the first event named `name` that satisfies `match`, or rejects after `timeoutMs`. */
  waitForEvent(name: string, match: (data: Record<string, unknown>) => boolean, timeoutMs: number): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (ev: QmpEvent): void => {
        if (ev.event !== name || !match(ev.data)) return;
        clearTimeout(timer);
        this.off('event', onEvent);
        resolve(ev);
      };
      const timer = setTimeout(() => {
        this.off('event', onEvent);
        reject(new QmpDisconnectedError(`no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('event', onEvent);
    });
  }

  /** Connect now (negotiating capabilities) unless already connected. */
  connect(): Promise<net.Socket> {
    if (this.closedByUser) return Promise.reject(new Error(`QMP client for ${this.socketPath} is closed`));
    if (this.socket) return Promise.resolve(this.socket);
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  close(): void {
    this.closedByUser = true;
    this.socket?.destroy();
    this.dropConnection(new QmpDisconnectedError('QMP client closed'));
  }

  private async open(): Promise<net.Socket> {
    const deadline = Date.now() + this.connectTimeoutMs;
    for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
      try {
        return await this.openOnce();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const retriable = code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EAGAIN';
        if (!retriable || Date.now() + delay > deadline) {
          throw new QmpDisconnectedError(`cannot connect to QMP socket ${this.socketPath}: ${(err as Error).message}`);
        }
        await sleep(delay);
      }
    }
  }

  /** Connect, read the greeting, leave negotiation mode. */
  private openOnce(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(this.socketPath);
      socket.setEncoding('utf8');
      const decoder = new QmpLineDecoder();
      let phase: 'greeting' | 'negotiating' | 'ready' = 'greeting';
      const fail = (err: Error): void => {
        socket.destroy();
        reject(err);
      };
      const handshakeTimer = setTimeout(
        () => fail(new QmpDisconnectedError(`QMP handshake on ${this.socketPath} timed out`)),
        this.commandTimeoutMs,
      );
      socket.on('error', (err) => {
        if (phase !== 'ready') {
          clearTimeout(handshakeTimer);
          fail(err);
        } else {
          log.debug({ socket: this.socketPath, err: err.message }, 'QMP socket error');
        }
      });
      socket.on('close', () => {
        if (phase !== 'ready') {
          clearTimeout(handshakeTimer);
          reject(Object.assign(new Error('QMP socket closed during handshake'), { code: 'ECONNREFUSED' }));
          return;
        }
        if (this.socket === socket) this.dropConnection(new QmpDisconnectedError(`QMP connection to ${this.socketPath} closed`));
      });
      socket.on('data', (chunk: string) => {
        let messages: Message[];
        try {
          messages = decoder.push(chunk);
        } catch (err) {
          log.warn({ socket: this.socketPath, err: (err as Error).message }, 'unparseable QMP message; reconnecting');
          socket.destroy();
          return;
        }
        for (const msg of messages) {
          if (phase === 'greeting') {
            if (!('QMP' in msg)) continue;
            phase = 'negotiating';
            socket.write(JSON.stringify({ execute: 'qmp_capabilities', id: 'negotiate' }) + '\n');
          } else if (phase === 'negotiating') {
            if (msg.id !== 'negotiate') continue;
            clearTimeout(handshakeTimer);
            if ('error' in msg) {
              fail(new Error(`qmp_capabilities failed: ${JSON.stringify(msg.error)}`));
              return;
            }
            phase = 'ready';
            this.socket = socket;
            resolve(socket);
          } else {
            this.dispatch(msg);
          }
        }
      });
    });
  }

  private dispatch(msg: Message): void {
    if (typeof msg.event === 'string') {
      this.emit('event', {
        event: msg.event,
        data: (msg.data as Record<string, unknown> | undefined) ?? {},
        timestamp: msg.timestamp as QmpEvent['timestamp'],
      });
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const e = msg.error as { class?: string; desc?: string };
      p.reject(new QmpCommandError(p.command, e.class ?? 'GenericError', e.desc ?? JSON.stringify(msg.error)));
    } else {
      p.resolve(msg.return);
    }
  }

  private dropConnection(err: Error): void {
    this.socket = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }
}
