// A private libvirtd per vmove host on one machine (hack/libvirt-sandbox.sh), for tests, demos
// and benchmarks: start it, point a LibvirtDriver at its socket, stop it.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { HostConfig } from '../driver';

const run = promisify(execFile);

/** From src/drivers/libvirt and from dist/drivers/libvirt alike, the repository root is three folders up. */
export const SANDBOX_SCRIPT = path.resolve(__dirname, '../../../hack/libvirt-sandbox.sh');

export interface LibvirtSandbox {
  name: string;
  dir: string;
  /** libvirtd's socket: LibvirtDriverOptions.socketPath. */
  socket: string;
  /** `qemu:///system?socket=…`, for virsh. */
  uri: string;
  /** `qemu+unix:///system?socket=…`, what peer daemons connect to. */
  peerUri: string;
  pid: number;
}

function parse(name: string, dir: string, stdout: string): LibvirtSandbox {
  const kv = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  return {
    name,
    dir,
    socket: kv.get('socket') ?? '',
    uri: kv.get('uri') ?? '',
    peerUri: kv.get('peer_uri') ?? '',
    pid: Number(kv.get('pid') || 0),
  };
}

/**
 * Starts the host's libvirtd (or finds it running); resolves once its socket answers. With
 * `tlsDir` (the host's certificate in QEMU's layout) its migrations may use TLS.
 */
export async function startSandbox(name: string, dir: string, ports?: [number, number], tlsDir?: string): Promise<LibvirtSandbox> {
  const args = ['start', name, dir, ...(ports ? ['--ports', `${ports[0]}-${ports[1]}`] : []), ...(tlsDir ? ['--tls-dir', tlsDir] : [])];
  const { stdout } = await run(SANDBOX_SCRIPT, args, { timeout: 600_000 });
  return parse(name, path.resolve(dir), stdout);
}

/** Stops the host's libvirtd; its guests keep running (libvirtd re-attaches on the next start) unless `killGuests`. */
export async function stopSandbox(name: string, dir: string, opts: { killGuests?: boolean } = {}): Promise<void> {
  await run(SANDBOX_SCRIPT, ['stop', name, dir, ...(opts.killGuests ? ['--kill-guests'] : [])], { timeout: 60_000 });
}

/** The sandbox as it is now; `running` false when its daemon is down. */
export async function sandboxStatus(name: string, dir: string): Promise<LibvirtSandbox & { running: boolean; guests: number[] }> {
  try {
    const { stdout } = await run(SANDBOX_SCRIPT, ['status', name, dir], { timeout: 30_000 });
    return { ...parse(name, path.resolve(dir), stdout), running: true, guests: guestsOf(stdout) };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    if (e.code === 3 && e.stdout !== undefined) return { ...parse(name, path.resolve(dir), e.stdout), running: false, guests: guestsOf(e.stdout) };
    throw err;
  }
}

const guestsOf = (stdout: string): number[] =>
  (/^guests=(.*)$/m.exec(stdout)?.[1] ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);

/** A vmove host on this machine backed by its own sandboxed libvirtd: folders, config, daemon. */
export interface SandboxHost {
  config: HostConfig;
  sandbox: LibvirtSandbox;
}

/**
 * Lays out a host under `<root>/<name>` (state, local disks, the daemon's folders), sharing
 * `sharedDir` and `imagesDir` with its peers, and starts its libvirtd with `ports` as the
 * range for incoming migrations and NBD exports.
 */
export async function startSandboxHost(p: {
  root: string;
  name: string;
  sharedDir: string;
  imagesDir: string;
  ports: [number, number];
  migrationAddress?: string;
  capacity?: HostConfig['capacity'];
}): Promise<SandboxHost> {
  const dir = path.join(p.root, p.name);
  const config: HostConfig = {
    nodeName: p.name,
    stateDir: path.join(dir, 'state'),
    localDir: path.join(dir, 'local'),
    sharedDir: p.sharedDir,
    imagesDir: p.imagesDir,
    migrationAddress: p.migrationAddress ?? '127.0.0.1',
    migrationPorts: p.ports,
    capacity: p.capacity ?? { cpu: 2, memoryBytes: 4 * 1024 ** 3 },
    storage: ['Local', 'SharedFile', 'SharedBlock'],
  };
  await Promise.all([config.stateDir, config.localDir, config.sharedDir].map((d) => mkdir(d, { recursive: true })));
  const sandbox = await startSandbox(p.name, path.join(dir, 'libvirt'), p.ports);
  return { config, sandbox };
}
