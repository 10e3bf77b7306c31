// `vmove agent`: run the node agent of one host.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, networkInterfaces, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { startAgent, type AgentAuth } from '../agent/agent';
import { DEFAULT_ALLOWED } from '../agent/auth';
import { parseBytes } from '../api/quantity';
import { STORAGE_KINDS, type StorageKind } from '../api/types';
import type { HostConfig } from '../drivers/driver';
import { DRIVER_KINDS, isDriverKind } from '../drivers/registry';
import { componentLogger } from '../log';
import { migrationAddressIn } from '../agent/migrationNetwork';
import { migrationTlsDir, tlsFilesOfDir, type AgentTlsFiles } from '../agent/tlsFiles';
import { parseServiceAccount, tokenFromFile } from '../kube/audienceToken';

const USAGE = `usage: vmove agent --node NAME [options]

  --node NAME                 node this agent serves (required)
  --driver sim|qemu|libvirt   hypervisor driver (default sim)
  --listen HOST:PORT          API address; port 0 picks a free one (default 127.0.0.1:0)
  --endpoint URL              URL advertised to the controller (default https://HOST:PORT)
  --tls-dir DIR               certificate material in QEMU's layout: ca-cert.pem, server-cert.pem,
                              server-key.pem, client-cert.pem, client-key.pem (the API's HTTPS and
                              the migration streams' TLS)
  --tls-cert-file PATH        or: this node's certificate (SAN: node name and advertised address),
  --tls-key-file PATH           its key,
  --tls-ca-file PATH            and the vmove CA (re-read when they change)
  --insecure-http             serve plain HTTP, no TLS at all (debugging only; warns at every start)
  --peer-token-file PATH      token shown to other agents (a projected ServiceAccount token with the
                              vmove-agent audience; re-read when it changes). Default: TokenRequest
                              for --peer-service-account
  --peer-service-account NS/NAME  (default vmove-system/vmove-agent)
  --endpoint-file PATH        write the endpoint there once listening
  --state-dir DIR             operation records, driver state (default $TMPDIR/vmove/NODE/state)
  --local-dir DIR             disks only this host sees (default $TMPDIR/vmove/NODE/local)
  --shared-dir DIR            disks all hosts see (default $TMPDIR/vmove/shared)
  --images-dir DIR            source images (default $TMPDIR/vmove/images)
  --migration-address HOST    address incoming migrations (memory and NBD disk streams) are sent
                              to (default 127.0.0.1); the API keeps --listen/--endpoint
  --migration-cidr CIDR       or: this host's address in that network (a dedicated migration
                              network); no address in it is a start-up error
  --migration-ports A-B       ports for incoming migrations (default 49152-49215)
  --cpu N                     CPUs offered to VMs (default: this machine's)
  --memory QUANTITY           memory offered to VMs, e.g. 8Gi (default: this machine's)
  --storage LIST              storage kinds offered (default Local,SharedFile,SharedBlock)
  --kubeconfig PATH           API server access (Lease, VM status, TokenReview);
                              default $KUBECONFIG or in-cluster, else none (standalone)
  --auth tokenreview|shared-secret
                              caller authentication (default tokenreview with a kubeconfig)
  --secret-file PATH          the shared secret (auth shared-secret)
  --allow-controller USER     identity allowed to call everything (repeatable)
  --allow-agent USER          identity allowed to read disks (repeatable)
  --lease-namespace NS        namespace of the agent Lease (default vmove-system)
  --watch-all-vms             list and watch every VirtualMachine in the cluster, as agents did
                              before they watched only the VMs placed on their node; for
                              comparison only (the moves benchmark's "before")
  --leftover-grace-seconds N  remove a copy of a VM that stays here, not running, after the VM
                              went on elsewhere, once it has looked so for N seconds (default 30)
  --sim-bandwidth-mibps N     sim: migration link bandwidth, or Infinity
  --sim-disk-mibps N          sim: disk copy rate, or Infinity
  --sim-time-scale N          sim: simulated seconds per real second
  --accelerator tcg|kvm       qemu, libvirt: accelerator guests run with (default tcg; chosen
                              explicitly, never by QEMU's kvm:tcg fallback)
  --libvirt-socket PATH       libvirt: libvirtd's socket (default /run/libvirt/libvirt-sock)
  --libvirt-migration-tls-dir DIR
                              libvirt: the folder libvirtd's qemu.conf names as
                              migrate_tls_x509_cert_dir (this node's certificate in QEMU's layout);
                              migrations then use TLS. Without it they are plaintext, and say so
`;

function number(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = /^inf(inity)?$/i.test(raw) ? Infinity : Number(raw);
  if (Number.isNaN(n) || n <= 0) throw new Error(`--${name}: a positive number (or Infinity), got "${raw}"`);
  return n;
}

function portRange(raw: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(raw);
  const [a, b] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(a >= 1 && b <= 65535 && a <= b)) throw new Error(`--migration-ports: A-B with 1 ≤ A ≤ B ≤ 65535, got "${raw}"`);
  return [a, b];
}

function migrationAddress(address: string | undefined, cidr: string | undefined): string {
  if (address !== undefined && cidr !== undefined) throw new Error('--migration-address and --migration-cidr: give one of them');
  if (cidr !== undefined) return migrationAddressIn(cidr, networkInterfaces());
  return address ?? '127.0.0.1';
}

function storageList(raw: string): StorageKind[] {
  const kinds = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const k of kinds) if (!STORAGE_KINDS.includes(k as StorageKind)) throw new Error(`--storage: unknown kind "${k}" (${STORAGE_KINDS.join(', ')})`);
  return kinds as StorageKind[];
}

function loadKubeconfig(path: string | undefined): KubeConfig | undefined {
  const kc = new KubeConfig();
  if (path) {
    kc.loadFromFile(path);
    return kc;
  }
  if (process.env.KUBECONFIG || process.env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromDefault();
    return kc;
  }
  return undefined;
}

/** The certificate files the flags name: a folder, or three files; none with --insecure-http. */
function tlsOptions(v: { 'tls-dir'?: string; 'tls-cert-file'?: string; 'tls-key-file'?: string; 'tls-ca-file'?: string; 'insecure-http'?: boolean }): AgentTlsFiles | undefined {
  const files = [v['tls-cert-file'], v['tls-key-file'], v['tls-ca-file']];
  if (v['tls-dir'] && files.some(Boolean)) throw new Error('--tls-dir or --tls-cert-file/--tls-key-file/--tls-ca-file, not both');
  if (files.some(Boolean) && !files.every(Boolean)) throw new Error('--tls-cert-file, --tls-key-file and --tls-ca-file go together');
  const tls = v['tls-dir'] ? tlsFilesOfDir(v['tls-dir']) : files.every(Boolean) ? { certFile: files[0]!, keyFile: files[1]!, caFile: files[2]! } : undefined;
  if (tls && v['insecure-http']) throw new Error('--insecure-http and TLS certificates exclude each other');
  if (!tls && !v['insecure-http']) throw new Error('the agent serves HTTPS: give --tls-dir (or --tls-cert-file, --tls-key-file, --tls-ca-file); --insecure-http for plain HTTP');
  return tls;
}

export async function agentCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        node: { type: 'string' },
        driver: { type: 'string', default: 'sim' },
        listen: { type: 'string', default: '127.0.0.1:0' },
        endpoint: { type: 'string' },
        'endpoint-file': { type: 'string' },
        'tls-dir': { type: 'string' },
        'tls-cert-file': { type: 'string' },
        'tls-key-file': { type: 'string' },
        'tls-ca-file': { type: 'string' },
        'insecure-http': { type: 'boolean', default: false },
        'peer-token-file': { type: 'string' },
        'peer-service-account': { type: 'string' },
        'state-dir': { type: 'string' },
        'local-dir': { type: 'string' },
        'shared-dir': { type: 'string' },
        'images-dir': { type: 'string' },
        'migration-address': { type: 'string' },
        'migration-cidr': { type: 'string' },
        'migration-ports': { type: 'string', default: '49152-49215' },
        cpu: { type: 'string' },
        memory: { type: 'string' },
        storage: { type: 'string', default: STORAGE_KINDS.join(',') },
        kubeconfig: { type: 'string' },
        auth: { type: 'string' },
        'secret-file': { type: 'string' },
        'allow-controller': { type: 'string', multiple: true },
        'allow-agent': { type: 'string', multiple: true },
        'lease-namespace': { type: 'string' },
        'leftover-grace-seconds': { type: 'string' },
        'watch-all-vms': { type: 'boolean', default: false },
        'sim-bandwidth-mibps': { type: 'string' },
        'sim-disk-mibps': { type: 'string' },
        'sim-time-scale': { type: 'string' },
        accelerator: { type: 'string' },
        'libvirt-socket': { type: 'string' },
        'libvirt-migration-tls-dir': { type: 'string' },
      },
    }));
  } catch (err) {
    process.stderr.write(`vmove agent: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  let options: Parameters<typeof startAgent>[0];
  let endpointFile: string | undefined;
  try {
    const node = values.node;
    if (!node || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(node)) throw new Error('--node: a Kubernetes node name is required');
    const driver = values.driver;
    if (!isDriverKind(driver)) throw new Error(`--driver: one of ${DRIVER_KINDS.join(', ')}`);
    const base = join(tmpdir(), 'vmove');
    const host: HostConfig = {
      nodeName: node,
      stateDir: values['state-dir'] ?? join(base, node, 'state'),
      localDir: values['local-dir'] ?? join(base, node, 'local'),
      sharedDir: values['shared-dir'] ?? join(base, 'shared'),
      imagesDir: values['images-dir'] ?? join(base, 'images'),
      migrationAddress: migrationAddress(values['migration-address'], values['migration-cidr']),
      migrationPorts: portRange(values['migration-ports']),
      capacity: {
        cpu: values.cpu !== undefined ? Math.floor(number('cpu', values.cpu)!) : cpus().length,
        memoryBytes: values.memory !== undefined ? parseBytes(values.memory) : totalmem(),
      },
      storage: storageList(values.storage),
    };
    const kubeconfig = loadKubeconfig(values.kubeconfig);
    const mode = values.auth ?? (kubeconfig ? 'tokenreview' : 'shared-secret');
    let auth: AgentAuth;
    if (mode === 'tokenreview') {
      if (!kubeconfig) throw new Error('--auth tokenreview needs --kubeconfig (or $KUBECONFIG / in-cluster)');
      auth = { mode };
    } else if (mode === 'shared-secret') {
      if (!values['secret-file']) throw new Error('--auth shared-secret needs --secret-file');
      auth = { mode, secret: (await readFile(values['secret-file'], 'utf8')).trim() };
    } else {
      throw new Error('--auth: tokenreview or shared-secret');
    }
    const leftoverGrace = number('leftover-grace-seconds', values['leftover-grace-seconds']);
    const simBandwidth = number('sim-bandwidth-mibps', values['sim-bandwidth-mibps']);
    const simDisk = number('sim-disk-mibps', values['sim-disk-mibps']);
    const simScale = number('sim-time-scale', values['sim-time-scale']);
    const tls = tlsOptions(values);
    const migrationTls = tls ? migrationTlsDir(tls, host.stateDir) : undefined;
    const accelerator = values.accelerator;
    if (accelerator !== undefined && accelerator !== 'tcg' && accelerator !== 'kvm') throw new Error(`--accelerator: tcg or kvm, got "${accelerator}"`);
    options = {
      host,
      driver,
      driverOptions: {
        sim: {
          ...(simBandwidth !== undefined ? { bandwidthMiBps: simBandwidth } : {}),
          ...(simDisk !== undefined ? { diskMiBps: simDisk } : {}),
          ...(simScale !== undefined ? { timeScale: simScale } : {}),
        },
        qemu: { ...(accelerator ? { accelerator } : {}), ...(migrationTls ? { tlsDir: migrationTls } : {}) },
        libvirt: {
          ...(accelerator ? { accelerator } : {}),
          ...(values['libvirt-socket'] ? { socketPath: values['libvirt-socket'] } : {}),
          ...(values['libvirt-migration-tls-dir'] ? { migrationTlsDir: values['libvirt-migration-tls-dir'] } : {}),
        },
      },
      listen: values.listen,
      ...(values.endpoint ? { endpoint: values.endpoint } : {}),
      ...(tls ? { tls } : {}),
      insecureHttp: values['insecure-http'],
      ...(values['peer-token-file'] ? { peerToken: tokenFromFile(values['peer-token-file']) } : {}),
      ...(values['peer-service-account'] ? { peerServiceAccount: parseServiceAccount(values['peer-service-account']) } : {}),
      auth,
      allowed: {
        controller: values['allow-controller'] ?? DEFAULT_ALLOWED.controller,
        agent: values['allow-agent'] ?? DEFAULT_ALLOWED.agent,
      },
      ...(kubeconfig ? { kubeconfig } : {}),
      ...(values['lease-namespace'] ? { leaseNamespace: values['lease-namespace'] } : {}),
      ...(leftoverGrace !== undefined ? { leftoverGraceMs: leftoverGrace * 1000 } : {}),
      ...(values['watch-all-vms'] ? { watchAllVms: true } : {}),
    };
    endpointFile = values['endpoint-file'];
  } catch (err) {
    process.stderr.write(`vmove agent: ${(err as Error).message}\n`);
    return 2;
  }

  const log = componentLogger('agent-cli', { node: options.host.nodeName });
  const agent = await startAgent(options);
  if (endpointFile) {
    await mkdir(dirname(endpointFile), { recursive: true });
    await writeFile(endpointFile, `${agent.endpoint}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'stopping; VMs keep running and the Lease expires unless a new agent renews it');
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await agent.stop();
  return 0;
}
