// A fleet of hosts on one machine: Node objects in the API server, one agent process per node
// (each with its own state and "local" storage folder and migration port range, all sharing one
// "shared" folder and one image folder), and the controller process. The demo (`make run`), the
// tests and the benchmarks run vmove this way; every process is the real `vmove` program.
// Nodes with the libvirt driver get a private libvirtd each (hack/libvirt-sandbox.sh), started
// with the node and stopped with the fleet; real guests (QEMU processes) end with the fleet too.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { once } from 'node:events';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { StorageKind } from '../api/types';
import { formatBytes, parseBytes } from '../api/quantity';
import type { HostConfig } from '../drivers/driver';
import type { DriverKind } from '../protocol/host';
import { startSandbox, stopSandbox, type LibvirtSandbox } from '../drivers/libvirt/sandbox';
import { vmFiles, vmsRoot } from '../drivers/qemu/paths';
import { findQemu, terminate } from '../drivers/qemu/processes';
import { isAlreadyExists, type KubeApi } from '../kube/api';
import { corePath } from '../kube/paths';
import { CA_CERT, agentPkiDir, issueNodeCert } from '../cluster/agentPki';

export interface FleetPaths {
  dir: string;
  /** Also copy every process's output to this stream, each line prefixed with its name (the demo). */
  echo?: NodeJS.WritableStream;
  /** Kubeconfigs of the controller's and the agents' identities. */
  controllerKubeconfig: string;
  agentKubeconfig: string;
  /** The vmove CA that signs each node's certificate; default agent-pki next to the kubeconfigs. */
  agentPkiDir?: string;
  sharedDir?: string;
  imagesDir?: string;
}

/** Where every agent of a fleet serves its API. */
const API_ADDRESS = '127.0.0.1';

export interface NodeOptions {
  labels?: Record<string, string>;
  driver?: DriverKind;
  cpu?: number;
  memory?: string;
  storage?: StorageKind[];
  /** Extra `vmove agent` flags (driver knobs). */
  agentArgs?: string[];
  /** Create the Node object too (default true). */
  createNode?: boolean;
  /** Serve plain HTTP (`--insecure-http`) instead of HTTPS with the node's certificate. */
  insecureHttp?: boolean;
  /** Start the agent with this node's certificate folder instead of its own (a host answering for another). */
  tlsDirOf?: string;
  /** Where its incoming migrations are sent (`--migration-address`), apart from its API on 127.0.0.1; default 127.0.0.1. */
  migrationAddress?: string;
}

/** A node's driver and host layout, fixed when the node is first added (a restarted agent reuses them). */
export interface FleetNode {
  name: string;
  driver: DriverKind;
  /** What its agent is told: folders, migration address and ports, capacity, storage. */
  host: HostConfig;
  /** The node's private libvirtd (libvirt driver). */
  libvirt?: LibvirtSandbox;
  /** Its certificate, key and the vmove CA, in QEMU's layout (agentPki.ts). */
  tlsDir: string;
}

export interface FleetProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * Node flags every vmove process runs with, here and in the image (the Dockerfile's ENTRYPOINT;
 * a unit test keeps the two equal). V8 grows its young generation with the allocation rate, up
 * to 2 × 64 MiB on a large machine: a controller parsing a fleet's watch events held ~130 MiB of
 * nursery for 27 MiB of live objects. 8 MiB semi-spaces keep that at 16 MiB for the same work.
 */
export const NODE_FLAGS = ['--max-semi-space-size=8'];

/** Where the compiled CLI lives, from src/ (tests) or dist/ (the CLI itself). */
export function cliPath(): string {
  const fromDist = path.resolve(__dirname, '../cli/main.js');
  if (existsSync(fromDist) && !__filename.endsWith('.ts')) return fromDist;
  const built = path.resolve(__dirname, '../../dist/cli/main.js');
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`make build\` first`);
  return built;
}

export class LocalFleet {
  readonly agents = new Map<string, FleetProcess>();
  readonly nodes = new Map<string, FleetNode>();
  controller?: FleetProcess;
  readonly shardControllers: FleetProcess[] = [];
  private nodeIndex = 0;
  private readonly portBase: number;
  readonly sharedDir: string;
  readonly imagesDir: string;

  constructor(
    private readonly api: KubeApi,
    private readonly p: FleetPaths,
    private readonly defaults: NodeOptions = {},
  ) {
    this.sharedDir = p.sharedDir ?? path.join(p.dir, 'shared');
    this.imagesDir = p.imagesDir ?? path.join(p.dir, 'images');
    mkdirSync(this.sharedDir, { recursive: true });
    // Without an image folder of its own (the qemu/libvirt guest kit's), the fleet offers the sim
    // driver an image named like the test guest, so the same manifests work with every driver.
    if (!p.imagesDir) mkdirSync(path.join(this.imagesDir, 'testguest'), { recursive: true });
    // Each fleet gets its own stretch of migration ports; agents pick free ones within theirs.
    this.portBase = 20_000 + Math.floor(Math.random() * 400) * 100;
  }

  /** Create (or keep) the Node object and start its agent. */
  async addNode(name: string, o: NodeOptions = {}): Promise<FleetProcess> {
    const opts = { ...this.defaults, ...o, labels: { ...this.defaults.labels, ...o.labels } };
    if (opts.createNode !== false) await this.ensureNode(name, opts.labels);
    const node = this.nodeLayout(name, opts);
    const { host } = node;
    const tlsDir = opts.insecureHttp ? undefined : await this.tlsDirOf(opts.tlsDirOf ?? name);
    const tlsArgs = tlsDir ? ['--tls-dir', tlsDir] : ['--insecure-http'];
    // A libvirt node's daemon gets the node's certificate for migrations, as its qemu.conf would name it on a real host.
    if (node.driver === 'libvirt') node.libvirt = await startSandbox(name, path.join(this.p.dir, 'nodes', name, 'libvirt'), host.migrationPorts, tlsDir);
    const args = [
      'agent',
      '--node', name,
      '--driver', node.driver,
      '--listen', `${API_ADDRESS}:0`,
      '--state-dir', host.stateDir,
      '--local-dir', host.localDir,
      '--shared-dir', host.sharedDir,
      '--images-dir', host.imagesDir,
      '--migration-address', host.migrationAddress,
      '--migration-ports', host.migrationPorts.join('-'),
      ...(node.libvirt ? ['--libvirt-socket', node.libvirt.socket] : []),
      ...(node.libvirt && tlsDir ? ['--libvirt-migration-tls-dir', tlsDir] : []),
      '--cpu', String(opts.cpu ?? host.capacity.cpu),
      '--memory', opts.memory ?? formatBytes(host.capacity.memoryBytes),
      '--storage', (opts.storage ?? host.storage).join(','),
      '--kubeconfig', this.p.agentKubeconfig,
      '--auth', 'tokenreview',
      ...tlsArgs,
      ...(opts.agentArgs ?? []),
    ];
    const proc = this.spawn(`agent-${name}`, args);
    this.agents.set(name, proc);
    return proc;
  }

  /** The node's folders and ports: chosen on first use, the same for every later agent of it. */
  private nodeLayout(name: string, opts: NodeOptions): FleetNode {
    const driver = opts.driver ?? 'sim';
    const known = this.nodes.get(name);
    if (known) {
      if (known.driver !== driver) throw new Error(`node ${name} runs the ${known.driver} driver; it cannot switch to ${driver}`);
      return known;
    }
    const index = this.nodeIndex++;
    const nodeDir = path.join(this.p.dir, 'nodes', name);
    const node: FleetNode = {
      name,
      driver,
      tlsDir: path.join(nodeDir, 'tls'),
      host: {
        nodeName: name,
        stateDir: path.join(nodeDir, 'state'),
        localDir: path.join(nodeDir, 'local'),
        sharedDir: this.sharedDir,
        imagesDir: this.imagesDir,
        migrationAddress: opts.migrationAddress ?? API_ADDRESS,
        migrationPorts: [this.portBase + index * 20, this.portBase + index * 20 + 19],
        capacity: { cpu: opts.cpu ?? 8, memoryBytes: parseBytes(opts.memory ?? '16Gi') },
        storage: opts.storage ?? ['Local', 'SharedFile', 'SharedBlock'],
      },
    };
    this.nodes.set(name, node);
    return node;
  }

  async ensureNode(name: string, labels: Record<string, string> = {}): Promise<void> {
    try {
      await this.api.create(corePath('nodes'), { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
  }

  /** The vmove CA that signs the nodes' certificates. */
  get agentPkiDir(): string {
    return this.p.agentPkiDir ?? agentPkiDir(path.dirname(this.p.controllerKubeconfig));
  }

  /** The certificate folder of a node the fleet laid out (issued, or kept when still valid). */
  async tlsDirOf(name: string): Promise<string> {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name} in this fleet`);
    // Like a chart-issued certificate: the node's name and its API address, not its migration network's.
    return issueNodeCert(this.agentPkiDir, name, [API_ADDRESS], node.tlsDir);
  }

  /** `nodeFlags`: more flags for Node itself (a benchmark's --cpu-prof). */
  startController(extraArgs: string[] = [], nodeFlags: string[] = []): FleetProcess {
    this.controller = this.spawnController('controller', extraArgs, nodeFlags);
    return this.controller;
  }

  /** One more controller, for a shard (`--shard NAME`): its log is `controller-NAME.log`; the fleet stops it too. */
  startShardController(shard: string, extraArgs: string[] = []): FleetProcess {
    const proc = this.spawnController(`controller-${shard}`, ['--shard', shard, ...extraArgs]);
    this.shardControllers.push(proc);
    return proc;
  }

  private spawnController(name: string, extraArgs: string[], nodeFlags: string[] = []): FleetProcess {
    const ca = path.join(this.agentPkiDir, CA_CERT);
    return this.spawn(name, ['controller', '--kubeconfig', this.p.controllerKubeconfig, '--agent-ca-file', ca, ...extraArgs], nodeFlags);
  }

  /** Kill a process the hard way (a crash), and wait until it is gone. */
  async kill(proc: FleetProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
    proc.child.kill(signal);
    await proc.exited;
  }

  async restartAgent(name: string, o: NodeOptions = {}): Promise<FleetProcess> {
    const old = this.agents.get(name);
    if (old) await this.kill(old, 'SIGTERM');
    return this.addNode(name, { ...o, createNode: false });
  }

  /** Stop the controller and the agents, then the guests and libvirtd daemons of real-driver nodes. */
  async stop(): Promise<void> {
    await Promise.all([this.controller, ...this.shardControllers].map((c) => this.kill(c, 'SIGTERM')));
    await Promise.all([...this.agents.values()].map((a) => this.kill(a, 'SIGTERM')));
    for (const node of this.nodes.values()) await this.endGuests(node);
  }

  /**
   * Real guests are processes of this machine that outlive their agent (as VMs outlive a
   * restarted agent on a real host); the fleet owns them, so they end with it. A libvirt node's
   * domains stay defined (shut off), and its next agent starts them again.
   */
  private async endGuests(node: FleetNode): Promise<void> {
    if (node.driver === 'libvirt') {
      await stopSandbox(node.name, path.join(this.p.dir, 'nodes', node.name, 'libvirt'), { killGuests: true });
      return;
    }
    if (node.driver !== 'qemu') return;
    let ids: string[] = [];
    try {
      ids = readdirSync(vmsRoot(node.host));
    } catch {
      return;
    }
    for (const id of ids) {
      const files = vmFiles(node.host, id);
      const pid = await findQemu(files.pidFile, files.qmpSocket);
      if (pid !== undefined) await terminate(pid, 3000);
    }
  }

  private spawn(name: string, args: string[], nodeFlags: string[] = []): FleetProcess {
    const logDir = path.join(this.p.dir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const logFile = path.join(logDir, `${name}.log`);
    const out = createWriteStream(logFile, { flags: 'a' });
    // setpriv --pdeathsig: the kernel stops the process if the one that started it dies
    // (a test worker torn down, the demo killed), so no agent or controller outlives its fleet.
    const argv = [process.execPath, ...NODE_FLAGS, ...nodeFlags, cliPath(), ...args];
    const [command, ...rest] = SETPRIV ? [SETPRIV, '--pdeathsig', 'TERM', '--', ...argv] : argv;
    const child = spawn(command!, rest, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VMOVE_LOG_LEVEL: process.env.VMOVE_FLEET_LOG_LEVEL ?? 'info', ...(this.p.echo ? { VMOVE_LOG_PRETTY: '1' } : {}) },
    });
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    if (this.p.echo) {
      const echo = this.p.echo;
      const prefix = `${name.padEnd(14)}| `;
      for (const stream of [child.stdout!, child.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => echo.write(`${prefix}${line}\n`));
      }
    }
    const exited = once(child, 'exit').then(([code]) => code as number | null);
    return { name, child, logFile, exited };
  }
}
