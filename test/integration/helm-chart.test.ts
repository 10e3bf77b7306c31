// The Helm chart (charts/vmove) as a cluster operator meets it: `helm lint`; `helm template`
// with the values people change; the rendered manifests through the real API server's own
// validation (server-side dry run); a real `helm install` into a control plane holding nothing of
// vmove yet; then the chart's own controller and agent commands, run here with no permissions but
// the chart's, move a VM. There is no kubelet: pods never run in the API server.
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';
import { requestToken } from '../support/agentTokens';
import type { MoveRequest, VirtualMachine } from '../../src/api/types';
import { freePort } from '../../src/cluster/ports';
import { KubeApi } from '../../src/kube/api';
import { vmovePath } from '../../src/kube/paths';
import { cliPath } from '../../src/local/fleet';
import { CLUSTER_START_TIMEOUT_MS, startTestCluster, type TestCluster } from '../support/testCluster';
import { moveYaml, vmYaml } from '../support/vmoveEnv';
import { pollUntil } from '../support/poll';

const REPO = resolve(__dirname, '..', '..');
const CHART = join(REPO, 'charts', 'vmove');
const NS = 'vmove-system';
/** A first build of helm from its Go module takes minutes; later runs find it cached. */
const HELM_BUILD_TIMEOUT_MS = 15 * 60_000;
// Each helm or kubectl call takes a fraction of a second, more on a machine busy with others.
jest.setTimeout(60_000);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

// ---------------------------------------------------------------- helm

function helmBinary(): Promise<string> {
  return new Promise((ok, fail) => {
    execFile('bash', [join(REPO, 'hack', 'build-helm.sh')], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) fail(new Error(`hack/build-helm.sh failed:\n${stderr.trim().split('\n').slice(-20).join('\n')}`));
      else ok(stdout.trim().split('\n').pop()!);
    });
  });
}

let helmPath: string;
/** Helm's own config, cache and data folders: this test's, not the user's. */
let helmHome: string;

function helm(args: string[], input?: string): Promise<Run> {
  return new Promise((ok, fail) => {
    const child = spawn(helmPath, args, {
      env: { ...process.env, HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_CONFIG_HOME: join(helmHome, 'config'), HELM_DATA_HOME: join(helmHome, 'data') },
      timeout: 120_000,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('error', fail);
    child.once('close', (code) => ok({ code: code ?? 128, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(input ?? '');
  });
}

async function helmOk(args: string[]): Promise<string> {
  const r = await helm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

// ---------------------------------------------------------------- rendered manifests

interface Container {
  name: string;
  args: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet: { path: string; port: string; scheme?: string } };
  readinessProbe?: { httpGet: { path: string; port: string; scheme?: string } };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string }[];
}

interface PodSpec {
  serviceAccountName: string;
  hostNetwork?: boolean;
  nodeSelector?: Record<string, string>;
  containers: Container[];
  volumes?: {
    name: string;
    hostPath?: { path: string };
    secret?: { secretName: string; items?: { key: string; path: string }[]; optional?: boolean };
    projected?: { sources: { serviceAccountToken?: { audience: string; expirationSeconds: number; path: string }; secret?: { name: string; optional?: boolean; items?: { key: string; path: string }[] } }[] };
  }[];
  affinity?: { podAntiAffinity?: { preferredDuringSchedulingIgnoredDuringExecution: { podAffinityTerm: { topologyKey: string } }[] } };
}

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
    template?: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    updateStrategy?: { type: string };
    minAvailable?: number;
    ports?: { name: string; targetPort: string }[];
    endpoints?: { port: string; path: string }[];
  };
  rules?: unknown[];
  data?: Record<string, string>;
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace: string }[];
}

class Rendered {
  constructor(readonly objects: Manifest[]) {}

  /** kind/name of every object, sorted. */
  names(): string[] {
    return this.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  }

  get(kind: string, name: string): Manifest {
    const o = this.objects.find((m) => m.kind === kind && m.metadata.name === name);
    if (!o) throw new Error(`no ${kind} ${name} rendered; have ${this.names().join(', ')}`);
    return o;
  }

  ofKind(kind: string): Manifest[] {
    return this.objects.filter((o) => o.kind === kind);
  }
}

interface RenderOptions {
  release?: string;
  namespace?: string;
  set?: string[];
}

const renderArgs = (o: RenderOptions): string[] => [
  'template', o.release ?? 'vmove', CHART, '--namespace', o.namespace ?? NS, ...(o.set ?? []).flatMap((s) => ['--set', s]),
];

async function render(o: RenderOptions = {}): Promise<Rendered> {
  const text = await helmOk(renderArgs(o));
  return new Rendered(parseAllDocuments(text).map((d) => d.toJS() as Manifest | null).filter((m): m is Manifest => m !== null));
}

const agentProbe = (r: Rendered) => container(r.get('DaemonSet', 'vmove-agent')).livenessProbe!.httpGet;
const container = (workload: Manifest): Container => workload.spec!.template!.spec.containers[0]!;
const podSpec = (workload: Manifest): PodSpec => workload.spec!.template!.spec;
const flag = (c: Container, name: string): string | undefined =>
  c.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const fieldRef = (c: Container, env: string): string | undefined => c.env?.find((e) => e.name === env)?.valueFrom?.fieldRef?.fieldPath;
/** Every label of `selector` is on `labels`. */
const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The objects of config/rbac/<component>.yaml, the permissions' source of truth. */
function configRbac(component: string): Manifest[] {
  return parseAllDocuments(readFileSync(join(REPO, 'config', 'rbac', `${component}.yaml`), 'utf8'))
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

// ---------------------------------------------------------------- the chart's commands, run here

interface ChartProcess {
  logFile: string;
  /** Throws, with the log's tail, if the process has exited (e.g. refused a flag). */
  assertRunning(): void;
  stop(): Promise<void>;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * Runs a rendered container's command with the compiled CLI: `$(VAR)` in its args replaced as
 * the kubelet would, its literal env, and `--kubeconfig` for the identity its ServiceAccount has.
 */
/**
 * `mounts`: what the kubelet would mount, by the container's mountPath → a local folder holding
 * the same files; flags naming a file under a mountPath are pointed at the local copy.
 */
function startChartProcess(c: Container, vars: Record<string, string>, kubeconfig: string, logFile: string, mounts: Record<string, string> = {}): ChartProcess {
  const args = c.args.map((a) => {
    let out = a.replace(/\$\((\w+)\)/g, (_m, name: string) => {
      const v = vars[name];
      if (v === undefined) throw new Error(`the chart's ${c.name} args use $(${name}), which this test does not set`);
      return v;
    });
    for (const m of c.volumeMounts ?? []) {
      const local = mounts[m.mountPath];
      if (local && out.includes(`=${m.mountPath}/`)) out = out.replace(`=${m.mountPath}/`, `=${local}/`);
    }
    return out;
  });
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  const argv = [process.execPath, cliPath(), ...args, `--kubeconfig=${kubeconfig}`];
  // setpriv --pdeathsig: the process ends with this test process, however that ends.
  const [command, ...rest] = SETPRIV ? [SETPRIV, '--pdeathsig', 'TERM', '--', ...argv] : argv;
  const out = openSync(logFile, 'a');
  const child = spawn(command!, rest, { stdio: ['ignore', out, out], env: { ...process.env, ...env } });
  closeSync(out);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    logFile,
    assertRunning() {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`vmove ${args[0]} exited (${child.exitCode ?? child.signalCode}):\n${tail(logFile)}`);
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A log's first lines (why a process refused to start) and its last ones. */
function tail(file: string): string {
  let lines: string[];
  try {
    lines = readFileSync(file, 'utf8').trim().split('\n');
  } catch {
    return '(no log)';
  }
  return lines.length <= 40 ? lines.join('\n') : [...lines.slice(0, 5), '…', ...lines.slice(-30)].join('\n');
}

// ---------------------------------------------------------------- the cluster

let cluster: TestCluster;
let api: KubeApi;

beforeAll(async () => {
  helmHome = mkdtempSync(join(tmpdir(), 'vmove-helm-'));
  // The control plane starts without vmove's CRDs and RBAC: the chart brings them.
  [helmPath, cluster] = await Promise.all([helmBinary(), startTestCluster({ crds: false, rbac: false })]);
  api = await KubeApi.fromFile(cluster.kubeconfig);
}, HELM_BUILD_TIMEOUT_MS + CLUSTER_START_TIMEOUT_MS);

afterAll(async () => {
  api?.close();
  await cluster?.stop();
  rmSync(helmHome, { recursive: true, force: true });
}, 60_000);

/** `running`: processes that must stay up meanwhile — one that died fails the wait at once. */
const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, running: ChartProcess[] = []): Promise<T> =>
  pollUntil(
    what,
    () => {
      for (const p of running) p.assertRunning();
      return probe();
    },
    { timeoutMs },
  );

// ---------------------------------------------------------------- tests

describe('helm lint and helm template', () => {
  test.each(['sim', 'qemu', 'libvirt'])('helm lint --strict passes with agent.driver=%s', async (driver) => {
    const r = await helm(['lint', '--strict', CHART, '--set', `agent.driver=${driver}`]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  test('default values: two leader-elected controllers and an agent on every labelled hypervisor host', async () => {
    const r = await render();
    expect(r.names()).toEqual([
      'ClusterRole/vmove-agent', 'ClusterRole/vmove-controller',
      'ClusterRoleBinding/vmove-agent', 'ClusterRoleBinding/vmove-controller',
      'DaemonSet/vmove-agent',
      'Deployment/vmove-controller',
      'NetworkPolicy/vmove-agent',
      'PodDisruptionBudget/vmove-controller',
      'Role/vmove-agent', 'Role/vmove-controller',
      'RoleBinding/vmove-agent', 'RoleBinding/vmove-controller',
      'Secret/vmove-agent-ca', 'Secret/vmove-agent-tls',
      'Service/vmove-controller-metrics',
      'ServiceAccount/vmove-agent', 'ServiceAccount/vmove-controller',
    ]);

    const deploy = r.get('Deployment', 'vmove-controller');
    const ctl = container(deploy);
    expect(deploy.spec!.replicas).toBe(2);
    expect(ctl.args[0]).toBe('controller');
    expect({ namespace: flag(ctl, 'namespace'), metrics: flag(ctl, 'metrics-address'), parallel: flag(ctl, 'parallel-moves') })
      .toEqual({ namespace: NS, metrics: ':8080', parallel: '5' });
    expect(ctl.args).not.toContain('--auto-evacuate-dead-hosts');
    expect(ctl.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(agentProbe(r)).toEqual({ path: '/healthz', port: 'api', scheme: 'HTTPS' });
    expect(ctl.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(ctl.ports).toEqual([{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }]);
    expect(ctl.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(podSpec(deploy).affinity!.podAntiAffinity!.preferredDuringSchedulingIgnoredDuringExecution[0]!.podAffinityTerm.topologyKey)
      .toBe('kubernetes.io/hostname');

    // The PDB and the metrics Service find the controller's pods, and only them.
    const ctlPods = deploy.spec!.template!.metadata.labels;
    const agentPods = r.get('DaemonSet', 'vmove-agent').spec!.template!.metadata.labels;
    const pdb = r.get('PodDisruptionBudget', 'vmove-controller');
    expect(pdb.spec!.minAvailable).toBe(1);
    expect(selects(pdb.spec!.selector!.matchLabels!, ctlPods)).toBe(true);
    const svc = r.get('Service', 'vmove-controller-metrics');
    expect(selects(svc.spec!.selector as Record<string, string>, ctlPods)).toBe(true);
    expect(selects(svc.spec!.selector as Record<string, string>, agentPods)).toBe(false);
    expect(svc.spec!.ports!.map((p) => p.targetPort)).toEqual(['metrics']);

    const ds = r.get('DaemonSet', 'vmove-agent');
    const agent = container(ds);
    expect(podSpec(ds).hostNetwork).toBe(true);
    expect(podSpec(ds).nodeSelector).toEqual({ 'vmove.dev/hypervisor': 'true' });
    expect({ node: fieldRef(agent, 'NODE_NAME'), ip: fieldRef(agent, 'NODE_IP') }).toEqual({ node: 'spec.nodeName', ip: 'status.hostIP' });
    expect({
      node: flag(agent, 'node'),
      driver: flag(agent, 'driver'),
      endpoint: flag(agent, 'endpoint'),
      migration: flag(agent, 'migration-address'),
      auth: flag(agent, 'auth'),
      storage: flag(agent, 'storage'),
    }).toEqual({ node: '$(NODE_NAME)', driver: 'sim', endpoint: 'https://$(NODE_IP):9440', migration: '$(NODE_IP)', auth: 'tokenreview', storage: 'Local' });
    expect(ds.spec!.updateStrategy!.type).toBe('RollingUpdate');
    expect(agent.securityContext!.privileged).toBeUndefined();
    // Host folders are mounted where they are on the host (libvirtd opens the same paths).
    for (const dir of ['state', 'local', 'shared', 'images']) {
      const path = flag(agent, `${dir}-dir`);
      const volume = podSpec(ds).volumes!.find((v) => v.hostPath?.path === path);
      expect({ dir, mountedAt: agent.volumeMounts!.find((m) => m.name === volume?.name)?.mountPath }).toEqual({ dir, mountedAt: path });
    }
  });

  test('agents accept calls from the controller the chart installs, whatever the release and namespace', async () => {
    const r = await render({ release: 'edge', namespace: 'virt' });
    const ctl = r.get('Deployment', 'edge-vmove-controller');
    const ds = r.get('DaemonSet', 'edge-vmove-agent');
    const agent = container(ds);
    expect(flag(agent, 'allow-controller')).toBe(`system:serviceaccount:virt:${podSpec(ctl).serviceAccountName}`);
    expect(flag(agent, 'allow-agent')).toBe(`system:serviceaccount:virt:${podSpec(ds).serviceAccountName}`);
    // Leases (leader and agents) live where the Roles grant them.
    expect(flag(container(ctl), 'namespace')).toBe('virt');
    expect(flag(agent, 'lease-namespace')).toBe('virt');
    for (const binding of r.ofKind('RoleBinding').concat(r.ofKind('ClusterRoleBinding'))) {
      const sa = r.get('ServiceAccount', binding.subjects![0]!.name);
      expect({ binding: binding.metadata.name, subject: binding.subjects, roleExists: !!r.get(binding.roleRef!.kind, binding.roleRef!.name) })
        .toEqual({ binding: binding.metadata.name, subject: [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'virt' }], roleExists: true });
    }
  });

  test.each(['controller', 'agent'])('the %s roles grant exactly the rules of config/rbac/', async (component) => {
    const r = await render();
    for (const kind of ['ClusterRole', 'Role']) {
      const source = configRbac(component).find((o) => o.kind === kind)!;
      expect({ kind, rules: r.get(kind, `vmove-${component}`).rules }).toEqual({ kind, rules: source.rules });
    }
  });

  test('TLS by default: each node gets a certificate naming it from the chart CA; the controller mounts only the CA, both show audience-bound projected tokens', async () => {
    const r = await render({ set: ['tls.nodes[0].name=hv-a', 'tls.nodes[0].addresses[0]=10.0.0.11'] });
    const tls = r.get('Secret', 'vmove-agent-tls');
    expect(Object.keys(tls.data!).sort()).toEqual(['ca.crt', 'hv-a.crt', 'hv-a.key', 'hv-a.san']);
    const cert = new X509Certificate(Buffer.from(tls.data!['hv-a.crt']!, 'base64'));
    expect(cert.subjectAltName).toBe('DNS:hv-a, IP Address:10.0.0.11');
    expect(cert.checkIssued(new X509Certificate(Buffer.from(tls.data!['ca.crt']!, 'base64')))).toBe(true);
    expect(r.get('Secret', 'vmove-agent-ca').data!['ca.key']).toBeTruthy();

    const ds = r.get('DaemonSet', 'vmove-agent');
    const agent = container(ds);
    expect({ cert: flag(agent, 'tls-cert-file'), key: flag(agent, 'tls-key-file'), ca: flag(agent, 'tls-ca-file'), peer: flag(agent, 'peer-token-file') }).toEqual({
      cert: '/etc/vmove/tls/$(NODE_NAME).crt', key: '/etc/vmove/tls/$(NODE_NAME).key', ca: '/etc/vmove/tls/ca.crt', peer: '/var/run/secrets/vmove-agent-token/token',
    });
    expect(podSpec(ds).volumes!.find((v) => v.name === 'tls')?.secret?.secretName).toBe('vmove-agent-tls');
    const deploy = r.get('Deployment', 'vmove-controller');
    const ctl = container(deploy);
    expect({ ca: flag(ctl, 'agent-ca-file'), token: flag(ctl, 'agent-token-file') }).toEqual({ ca: '/etc/vmove/agent-ca/ca.crt', token: '/var/run/secrets/vmove-agent-token/token' });
    expect(podSpec(deploy).volumes!.find((v) => v.name === 'agent-ca')?.secret).toEqual({ secretName: 'vmove-agent-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }], optional: true });
    for (const w of [ds, deploy]) {
      expect(podSpec(w).volumes!.find((v) => v.name === 'agent-token')?.projected?.sources).toEqual([{ serviceAccountToken: { audience: 'vmove-agent', expirationSeconds: 3600, path: 'token' } }]);
    }
    expect(ctl.args).not.toContain('--insecure-migration');
  });

  test('tls.certManager.enabled: a CA Issuer chain and one Certificate per node, projected into the agents', async () => {
    const r = await render({ set: ['tls.certManager.enabled=true', 'tls.nodes[0].name=hv-a', 'tls.nodes[0].addresses[0]=10.0.0.11'] });
    expect(r.names().filter((n) => /Issuer|Certificate|Secret/.test(n))).toEqual(['Certificate/vmove-agent-ca', 'Certificate/vmove-agent-tls-hv-a', 'Issuer/vmove-agent-ca', 'Issuer/vmove-selfsigned']);
    const node = r.get('Certificate', 'vmove-agent-tls-hv-a') as unknown as { spec: Record<string, unknown> };
    expect(node.spec).toMatchObject({ secretName: 'vmove-agent-tls-hv-a', dnsNames: ['hv-a'], ipAddresses: ['10.0.0.11'], issuerRef: { kind: 'Issuer', name: 'vmove-agent-ca' } });
    expect(node.spec.usages).toEqual(expect.arrayContaining(['server auth', 'client auth']));
    const sources = podSpec(r.get('DaemonSet', 'vmove-agent')).volumes!.find((v) => v.name === 'tls')!.projected!.sources;
    expect(sources).toEqual([
      { secret: { name: 'vmove-agent-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      { secret: { name: 'vmove-agent-tls-hv-a', optional: true, items: [{ key: 'tls.crt', path: 'hv-a.crt' }, { key: 'tls.key', path: 'hv-a.key' }] } },
    ]);
    expect(podSpec(r.get('Deployment', 'vmove-controller')).volumes!.find((v) => v.name === 'agent-ca')?.secret?.secretName).toBe('vmove-agent-ca');
  });

  test('NetworkPolicy: the agent API port for the controller (and agents), the migration ports for agents only', async () => {
    const r = await render({ set: ['networkPolicy.nodeCIDRs[0]=10.0.0.0/24'] });
    const np = r.get('NetworkPolicy', 'vmove-agent') as unknown as { spec: { podSelector: { matchLabels: Record<string, string> }; ingress: { from: Record<string, unknown>[]; ports: Record<string, unknown>[] }[] } };
    const agentPods = r.get('DaemonSet', 'vmove-agent').spec!.template!.metadata.labels;
    const ctlPods = r.get('Deployment', 'vmove-controller').spec!.template!.metadata.labels;
    expect(selects(np.spec.podSelector.matchLabels, agentPods)).toBe(true);
    const [api, migration] = np.spec.ingress;
    expect(api!.ports).toEqual([{ protocol: 'TCP', port: 9440 }]);
    expect(api!.from.some((f) => selects((f.podSelector as { matchLabels: Record<string, string> } | undefined)?.matchLabels ?? { none: 'x' }, ctlPods))).toBe(true);
    expect(migration!.ports).toEqual([{ protocol: 'TCP', port: 49152, endPort: 49215 }]);
    expect(migration!.from.some((f) => selects((f.podSelector as { matchLabels: Record<string, string> } | undefined)?.matchLabels ?? { none: 'x' }, ctlPods))).toBe(false);
    expect(migration!.from).toContainEqual({ ipBlock: { cidr: '10.0.0.0/24' } });
    expect((await render({ set: ['networkPolicy.enabled=false'] })).ofKind('NetworkPolicy')).toEqual([]);
  });

  test('a dedicated migration network: agents find their address in it, its hosts may reach the migration ports, the API stays put', async () => {
    const r = await render({ set: ['agent.migrationNetwork.cidr=10.20.0.0/16'] });
    const agent = container(r.get('DaemonSet', 'vmove-agent'));
    expect({ cidr: flag(agent, 'migration-cidr'), address: flag(agent, 'migration-address'), endpoint: flag(agent, 'endpoint') })
      .toEqual({ cidr: '10.20.0.0/16', address: undefined, endpoint: 'https://$(NODE_IP):9440' });
    const np = r.get('NetworkPolicy', 'vmove-agent') as unknown as { spec: { ingress: { from: Record<string, unknown>[] }[] } };
    const [api, migration] = np.spec.ingress;
    expect(migration!.from).toContainEqual({ ipBlock: { cidr: '10.20.0.0/16' } });
    expect(api!.from).not.toContainEqual({ ipBlock: { cidr: '10.20.0.0/16' } });
    await expect(render({ set: ['agent.migrationNetwork.cidr=eth1'] })).rejects.toThrow(/migrationNetwork\/cidr.*does not match/);
  });

  test('plaintext only when asked: agentTls.insecureHttp, migration.insecure', async () => {
    const r = await render({ set: ['agentTls.insecureHttp=true', 'migration.insecure=true'] });
    const agent = container(r.get('DaemonSet', 'vmove-agent'));
    expect(agent.args).toContain('--insecure-http');
    expect(flag(agent, 'endpoint')).toBe('http://$(NODE_IP):9440');
    expect(agentProbe(r).scheme).toBe('HTTP');
    const ctl = container(r.get('Deployment', 'vmove-controller'));
    expect(ctl.args).toContain('--insecure-migration');
    expect(flag(ctl, 'agent-ca-file')).toBeUndefined();
  });

  test('agent.enabled=false renders the controller alone', async () => {
    const r = await render({ set: ['agent.enabled=false'] });
    expect(r.names().filter((n) => n.includes('agent'))).toEqual([]);
    expect(r.get('Deployment', 'vmove-controller').spec!.replicas).toBe(2);
  });

  test('driver qemu: privileged agents that update only when their pod is deleted (their VMs stop with it)', async () => {
    const r = await render({ set: ['agent.driver=qemu', 'agent.accelerator=kvm'] });
    const ds = r.get('DaemonSet', 'vmove-agent');
    expect(flag(container(ds), 'driver')).toBe('qemu');
    expect(flag(container(ds), 'accelerator')).toBe('kvm');
    expect(container(ds).securityContext).toMatchObject({ privileged: true, runAsUser: 0 });
    expect(ds.spec!.updateStrategy).toEqual({ type: 'OnDelete' });
  });

  test("driver libvirt: the host's libvirtd socket, no privileged container", async () => {
    const r = await render({ set: ['agent.driver=libvirt', 'agent.libvirtSocketDir=/var/run/libvirt'] });
    const ds = r.get('DaemonSet', 'vmove-agent');
    const socket = podSpec(ds).volumes!.find((v) => v.name === 'libvirt-socket');
    expect(socket?.hostPath?.path).toBe('/var/run/libvirt');
    // The agent's default --libvirt-socket is /run/libvirt/libvirt-sock.
    expect(container(ds).volumeMounts).toContainEqual({ name: 'libvirt-socket', mountPath: '/run/libvirt' });
    expect(container(ds).securityContext!.privileged).toBeUndefined();
    expect(ds.spec!.updateStrategy!.type).toBe('RollingUpdate');
    // Migrations over TLS unless the values empty the certificate folder.
    expect(flag(container(ds), 'libvirt-migration-tls-dir')).toBe('/etc/pki/qemu');
    const plain = await render({ set: ['agent.driver=libvirt', 'agent.libvirtMigrationTlsDir='] });
    expect(flag(container(plain.get('DaemonSet', 'vmove-agent')), 'libvirt-migration-tls-dir')).toBeUndefined();
  });

  test('auth shared-secret: the controller presents, and the agents expect, the same Secret key', async () => {
    const r = await render({ set: ['auth.mode=shared-secret', 'auth.existingSecret=vmove-agent-token'] });
    const ctl = container(r.get('Deployment', 'vmove-controller'));
    const agent = container(r.get('DaemonSet', 'vmove-agent'));
    expect(flag(agent, 'auth')).toBe('shared-secret');
    expect(flag(agent, 'secret-file')).toBe(flag(ctl, 'agent-token-file'));
    for (const w of [r.get('Deployment', 'vmove-controller'), r.get('DaemonSet', 'vmove-agent')]) {
      expect(podSpec(w).volumes!.find((v) => v.secret)?.secret?.secretName).toBe('vmove-agent-token');
    }
  });

  test('values that cannot work are refused with what to fix', async () => {
    const noSecret = await helm(renderArgs({ set: ['auth.mode=shared-secret'] }));
    expect(noSecret.code).not.toBe(0);
    expect(noSecret.stderr).toContain('auth.mode shared-secret needs auth.existingSecret');
    const driver = await helm(renderArgs({ set: ['agent.driver=xen'] }));
    expect(driver.code).not.toBe(0);
    expect(driver.stderr).toMatch(/\/agent\/driver': value must be one of 'sim', 'qemu', 'libvirt'/);
    const typo = await helm(renderArgs({ set: ['agent.nodeselector.x=y'] }));
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain("additional properties 'nodeselector' not allowed");
  });

  test('one replica: no PodDisruptionBudget (it would block every drain of its node)', async () => {
    const r = await render({ set: ['controller.replicas=1'] });
    expect(r.ofKind('PodDisruptionBudget')).toEqual([]);
  });

  test('controller.shards: one Deployment and PDB per shard, each selecting only its own pods and running --shard; the metrics Service reaches them all', async () => {
    const r = await render({ set: ['controller.shards={east,west}'] });
    expect(r.ofKind('Deployment').map((d) => d.metadata.name)).toEqual(['vmove-controller-east', 'vmove-controller-west']);
    const pods = (shard: string) => r.get('Deployment', `vmove-controller-${shard}`).spec!.template!.metadata.labels;
    for (const shard of ['east', 'west']) {
      const deploy = r.get('Deployment', `vmove-controller-${shard}`);
      const other = shard === 'east' ? 'west' : 'east';
      expect({ shard: flag(container(deploy), 'shard'), replicas: deploy.spec!.replicas }).toEqual({ shard, replicas: 2 });
      expect(selects(deploy.spec!.selector!.matchLabels!, pods(shard))).toBe(true);
      expect(selects(deploy.spec!.selector!.matchLabels!, pods(other))).toBe(false);
      const pdb = r.get('PodDisruptionBudget', `vmove-controller-${shard}`);
      expect(selects(pdb.spec!.selector!.matchLabels!, pods(shard))).toBe(true);
      expect(selects(pdb.spec!.selector!.matchLabels!, pods(other))).toBe(false);
      expect(selects(r.get('Service', 'vmove-controller-metrics').spec!.selector as Record<string, string>, pods(shard))).toBe(true);
    }
    // Unsharded, nothing names a shard: an upgrade from before shards keeps its Deployment's selector.
    const one = (await render()).get('Deployment', 'vmove-controller');
    expect(flag(container(one), 'shard')).toBeUndefined();
    expect(Object.keys(one.spec!.selector!.matchLabels!)).not.toContain('vmove.dev/shard');
    const bad = await helm(renderArgs({ set: ['controller.shards={East}'] }));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("'/controller/shards/0': 'East' does not match pattern");
  });

  test('metrics.serviceMonitor.enabled adds a ServiceMonitor scraping the metrics Service', async () => {
    const r = await render({ set: ['metrics.serviceMonitor.enabled=true'] });
    const sm = r.get('ServiceMonitor', 'vmove-controller');
    const svc = r.get('Service', 'vmove-controller-metrics');
    expect(selects(sm.spec!.selector!.matchLabels!, svc.metadata.labels!)).toBe(true);
    expect(sm.spec!.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
  });

  test("the ServiceMonitor keeps the metrics' own namespace label (honorLabels), which per-move series carry", async () => {
    const sm = (await render({ set: ['metrics.serviceMonitor.enabled=true'] })).get('ServiceMonitor', 'vmove-controller');
    expect(sm.spec!.endpoints).toEqual([expect.objectContaining({ honorLabels: true })]);
  });

  test('metrics.prometheusRule.enabled adds a PrometheusRule holding files/alerts.yaml as it is (the rules test/unit/alerts.test.ts evaluates)', async () => {
    expect((await render()).ofKind('PrometheusRule')).toEqual([]);
    const r = await render({ set: ['metrics.prometheusRule.enabled=true', 'metrics.prometheusRule.labels.release=kube-prometheus-stack'] });
    const rule = r.get('PrometheusRule', 'vmove');
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.metadata).toMatchObject({ namespace: NS, labels: expect.objectContaining({ release: 'kube-prometheus-stack' }) });
    expect(rule.spec).toEqual(parse(readFileSync(join(CHART, 'files', 'alerts.yaml'), 'utf8')));
  });

  test("metrics.grafanaDashboard.enabled adds files/dashboard.json in a ConfigMap with the Grafana sidecar's label", async () => {
    expect((await render()).ofKind('ConfigMap')).toEqual([]);
    const dashboard = JSON.parse(readFileSync(join(CHART, 'files', 'dashboard.json'), 'utf8')) as unknown;
    const r = await render({ set: ['metrics.grafanaDashboard.enabled=true'] });
    const cm = r.get('ConfigMap', 'vmove-dashboard') as Manifest & { data: Record<string, string> };
    expect(cm.metadata).toMatchObject({ namespace: NS, labels: expect.objectContaining({ grafana_dashboard: '1' }) });
    expect(Object.keys(cm.data)).toEqual(['vmove.json']);
    expect(JSON.parse(cm.data['vmove.json']!)).toEqual(dashboard);
    // Where the sidecar watches, with the label and folder it wants.
    const elsewhere = await render({ set: ['metrics.grafanaDashboard.enabled=true', 'metrics.grafanaDashboard.namespace=monitoring', 'metrics.grafanaDashboard.labels.grafana_dashboard=null', 'metrics.grafanaDashboard.labels.dashboards=vmove', 'metrics.grafanaDashboard.annotations.grafana_folder=vmove'] });
    const moved = elsewhere.get('ConfigMap', 'vmove-dashboard') as Manifest & { metadata: { annotations?: Record<string, string> } };
    expect(moved.metadata.namespace).toBe('monitoring');
    expect(moved.metadata.labels).toMatchObject({ dashboards: 'vmove' });
    expect(moved.metadata.labels).not.toHaveProperty('grafana_dashboard');
    expect(moved.metadata.annotations).toEqual({ grafana_folder: 'vmove' });
  });
});

// One story, in order: dry runs, install, permissions, vmove at work, upgrade, uninstall.
describe('in a real API server', () => {
  // What users install, checked by the API server itself (schemas, CEL, strict fields), CRDs
  // included, without persisting anything.
  test.each<[string, string[]]>([
    ['default values', []],
    ['agent disabled', ['agent.enabled=false']],
    ['driver qemu', ['agent.driver=qemu']],
    ['driver libvirt, auth shared-secret, one replica', ['agent.driver=libvirt', 'auth.mode=shared-secret', 'auth.existingSecret=s', 'controller.replicas=1']],
    ['Grafana dashboard', ['metrics.grafanaDashboard.enabled=true']],
  ])('the API server accepts the rendered manifests: %s', async (_name, set) => {
    const manifests = await helmOk([...renderArgs({ set }), '--include-crds']);
    const r = await cluster.kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=helm-chart-test', '-f', '-'], { input: manifests });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toContain('deployment.apps/vmove-controller serverside-applied (server dry run)');
  });

  test('helm install creates the CRDs, the controller Deployment, the agent DaemonSet and their RBAC', async () => {
    const installed = await helmOk(['install', 'vmove', CHART, '--namespace', NS, '--create-namespace', '--kubeconfig', cluster.kubeconfig]);
    // The notes say how to give the agents their hosts.
    expect(installed).toContain('kubectl label node <NODE> vmove.dev/hypervisor=true');
    const status = parse(await helmOk(['status', 'vmove', '--namespace', NS, '--kubeconfig', cluster.kubeconfig, '-o', 'yaml'])) as { info: { status: string } };
    expect(status.info.status).toBe('deployed');

    for (const crd of ['virtualmachines.vmove.dev', 'moverequests.vmove.dev', 'hostevacuations.vmove.dev', 'movepolicies.vmove.dev']) {
      const r = await cluster.kubectl(['get', 'crd', crd, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}']);
      expect({ crd, established: r.stdout }).toEqual({ crd, established: 'True' });
    }
    const get = async (what: string, namespaced = true): Promise<string[]> => {
      const r = await cluster.kubectl(['get', what, ...(namespaced ? ['-n', NS] : []), '-l', 'app.kubernetes.io/instance=vmove', '-o', 'name']);
      expect(r.stderr).toBe('');
      return r.stdout.trim().split('\n').filter(Boolean).sort();
    };
    expect(await get('deployments')).toEqual(['deployment.apps/vmove-controller']);
    expect(await get('daemonsets')).toEqual(['daemonset.apps/vmove-agent']);
    expect(await get('serviceaccounts')).toEqual(['serviceaccount/vmove-agent', 'serviceaccount/vmove-controller']);
    expect(await get('roles,rolebindings')).toEqual([
      'role.rbac.authorization.k8s.io/vmove-agent', 'role.rbac.authorization.k8s.io/vmove-controller',
      'rolebinding.rbac.authorization.k8s.io/vmove-agent', 'rolebinding.rbac.authorization.k8s.io/vmove-controller',
    ]);
    expect(await get('clusterroles,clusterrolebindings', false)).toEqual([
      'clusterrole.rbac.authorization.k8s.io/vmove-agent', 'clusterrole.rbac.authorization.k8s.io/vmove-controller',
      'clusterrolebinding.rbac.authorization.k8s.io/vmove-agent', 'clusterrolebinding.rbac.authorization.k8s.io/vmove-controller',
    ]);
    expect(await get('services,poddisruptionbudgets')).toEqual(['poddisruptionbudget.policy/vmove-controller', 'service/vmove-controller-metrics']);
  });

  // [who, verb, resource, scope, allowed]: what each component does, and what it must not.
  const ACCESS: [string, string, string, string[], boolean][] = [
    ['controller', 'watch', 'moverequests.vmove.dev', ['-A'], true],
    ['controller', 'create', 'moverequests.vmove.dev', ['-n', 'default'], true],
    ['controller', 'patch', 'moverequests.vmove.dev', ['--subresource=status', '-A'], true],
    ['controller', 'update', 'virtualmachines.vmove.dev', ['--subresource=finalizers', '-A'], true],
    ['controller', 'patch', 'hostevacuations.vmove.dev', ['--subresource=status'], true],
    ['controller', 'patch', 'nodes', [], true],
    ['controller', 'create', 'events.events.k8s.io', ['-n', 'default'], true],
    ['controller', 'update', 'leases.coordination.k8s.io', ['-n', NS], true],
    ['controller', 'update', 'leases.coordination.k8s.io', ['-n', 'kube-system'], false],
    ['controller', 'watch', 'movepolicies.vmove.dev', [], true],
    ['controller', 'watch', 'namespaces', [], true],
    ['controller', 'update', 'movepolicies.vmove.dev', [], false],
    ['controller', 'delete', 'nodes', [], false],
    ['controller', 'get', 'secrets', ['-A'], false],
    ['agent', 'patch', 'virtualmachines.vmove.dev', ['--subresource=status', '-A'], true],
    ['agent', 'create', 'tokenreviews.authentication.k8s.io', [], true],
    ['agent', 'create', 'leases.coordination.k8s.io', ['-n', NS], true],
    ['agent', 'patch', 'virtualmachines.vmove.dev', ['-A'], false],
    ['agent', 'create', 'moverequests.vmove.dev', ['-n', 'default'], false],
    ['agent', 'patch', 'nodes', [], false],
  ];

  test('the ServiceAccounts may do what vmove does, and nothing it does not', async () => {
    const answer = async (who: string, verb: string, resource: string, scope: string[]): Promise<boolean> => {
      const r = await cluster.kubectl(['auth', 'can-i', verb, resource, ...scope, '--as', `system:serviceaccount:${NS}:vmove-${who}`]);
      return r.stdout.trim() === 'yes';
    };
    const wanted = ACCESS.map(([who, verb, resource, scope, allowed]) => `${who} ${verb} ${resource} ${scope.join(' ')}: ${allowed}`);
    // The authorizer sees new bindings through a cache: ask until it agrees (or time runs out).
    let seen: string[] = [];
    await waitFor('RBAC to be in force', async () => {
      seen = await Promise.all(ACCESS.map(async ([who, verb, resource, scope]) => `${who} ${verb} ${resource} ${scope.join(' ')}: ${await answer(who, verb, resource, scope)}`));
      return seen.join() === wanted.join() ? true : undefined;
    }, 15_000).catch(() => undefined);
    expect(seen).toEqual(wanted);
  });

  // The chart's own container commands, run here as the kubelet would run them (its $(VAR)
  // substitution; a kubeconfig of the same identity in place of the in-cluster one): the flags
  // the chart passes are flags the program knows, the probes' paths answer, and the permissions
  // the chart grants are enough for vmove to do its job.
  test("the chart's controller and agent commands, with only the chart's permissions, move a VM", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmove-helm-run-'));
    mkdirSync(join(dir, 'images', 'testguest'), { recursive: true }); // the sim driver's image
    const processes: ChartProcess[] = [];
    try {
      // As the kubelet would: the chart's agent-tls Secret (one render, one CA) as files, and
      // the projected vmove-agent tokens of each ServiceAccount.
      const tlsSecret = (await render({ set: ['tls.nodes[0].name=hv-a', 'tls.nodes[0].addresses[0]=127.0.0.1', 'tls.nodes[1].name=hv-b', 'tls.nodes[1].addresses[0]=127.0.0.1'] }))
        .get('Secret', 'vmove-agent-tls');
      const files = (sub: string, content: Record<string, string>): string => {
        mkdirSync(join(dir, sub), { recursive: true });
        for (const [k, v] of Object.entries(content)) writeFileSync(join(dir, sub, k), v);
        return join(dir, sub);
      };
      const tlsDir = files('tls', Object.fromEntries(Object.entries(tlsSecret.data!).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])));
      const caDir = files('agent-ca', { 'ca.crt': Buffer.from(tlsSecret.data!['ca.crt']!, 'base64').toString() });
      const agentTokenDir = files('agent-token', { token: await requestToken(cluster, 'vmove-agent') });
      const controllerTokenDir = files('controller-token', { token: await requestToken(cluster, 'vmove-controller') });
      for (const node of ['hv-a', 'hv-b']) {
        const r = await cluster.kubectl(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node, labels: { 'vmove.dev/hypervisor': 'true' } } }) });
        expect(r.stderr).toBe('');
        const port = await freePort();
        const chart = await render({ set: [
          `agent.port=${port}`,
          `agent.hostDirs.state=${join(dir, node, 'state')}`,
          `agent.hostDirs.local=${join(dir, node, 'local')}`,
          `agent.hostDirs.shared=${join(dir, 'shared')}`,
          `agent.hostDirs.images=${join(dir, 'images')}`,
        ] });
        processes.push(startChartProcess(container(chart.get('DaemonSet', 'vmove-agent')), { NODE_NAME: node, NODE_IP: '127.0.0.1' }, cluster.agentKubeconfig, join(dir, `agent-${node}.log`), {
          '/etc/vmove/tls': tlsDir,
          '/var/run/secrets/vmove-agent-token': agentTokenDir,
        }));
      }
      const metricsPort = await freePort();
      const deployment = (await render({ set: [`metrics.port=${metricsPort}`, 'controller.policyDefaults.maxDowntimeMs=500', 'controller.policyDefaults.allowPostCopy=false'] }))
        .get('Deployment', 'vmove-controller');
      const controller = startChartProcess(container(deployment), { POD_NAME: 'vmove-controller-0' }, cluster.controllerKubeconfig, join(dir, 'controller.log'), {
        '/etc/vmove/agent-ca': caDir,
        '/var/run/secrets/vmove-agent-token': controllerTokenDir,
      });
      processes.push(controller);
      const logs = () => processes.map((p) => `--- ${p.logFile}\n${tail(p.logFile)}`).join('\n');

      // The probes the Deployment declares: alive at once; ready once it leads with synced caches.
      const probe = async (path: string) => (await fetch(`http://127.0.0.1:${metricsPort}${path}`).catch(() => undefined))?.status;
      await waitFor('the controller to answer its readiness probe', async () => ((await probe(container(deployment).readinessProbe!.httpGet.path)) === 200 ? true : undefined), 30_000, processes)
        .catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
      expect(await probe(container(deployment).livenessProbe!.httpGet.path)).toBe(200);
      const lease = await cluster.kubectl(['get', 'lease', 'vmove-controller', '-n', NS, '-o', 'jsonpath={.spec.holderIdentity}']);
      expect(lease.stdout).toBe('vmove-controller-0');

      const apply = async (yaml: string) => {
        const r = await cluster.kubectl(['apply', '-f', '-'], { input: yaml });
        if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
      };
      // The chart's agents offer Local storage unless told otherwise.
      await apply(vmYaml('web', { node: 'hv-a', storage: 'Local' }));
      const vm = () => api.find<VirtualMachine>(vmovePath('virtualmachines', { namespace: 'default', name: 'web' }));
      await waitFor('VM web running on hv-a', async () => ((await vm())?.status?.phase === 'Running' ? true : undefined), 30_000, processes)
        .catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
      // Both agents have announced themselves (their Leases), as a user checks before a move.
      await waitFor('the agents of hv-a and hv-b to hold their Leases', async () => {
        const r = await cluster.kubectl(['get', 'lease', '-A', '-o', 'jsonpath={.items[*].metadata.name}']);
        const names = r.stdout.split(' ');
        return names.includes('vmove-agent-hv-a') && names.includes('vmove-agent-hv-b') ? true : undefined;
      }, 30_000, processes).catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
      await apply(moveYaml('web-to-b', 'web', { mode: 'Live', target: { nodeName: 'hv-b' } }));
      const done = await waitFor('the move to finish', async () => {
        const mr = await api.find<MoveRequest>(vmovePath('moverequests', { namespace: 'default', name: 'web-to-b' }));
        const phase = mr?.status?.phase;
        return phase === 'Succeeded' || phase === 'Failed' || phase === 'Cancelled' ? mr : undefined;
      }, 60_000, processes).catch((e: Error) => { throw new Error(`${e.message}\n${logs()}`); });
      expect({ phase: done.status?.phase, moveType: done.status?.moveType, targetNode: done.status?.targetNode, message: done.status?.phase === 'Succeeded' ? '' : done.status?.message })
        .toEqual({ phase: 'Succeeded', moveType: 'Live', targetNode: 'hv-b', message: '' });
      // The controller lets the VM go right after it marks the move done.
      await waitFor('VM web released, running on hv-b', async () => {
        const st = (await vm())?.status;
        return st?.moveRef ? undefined : st;
      }, 10_000, processes);
      expect((await vm())?.status).toMatchObject({ nodeName: 'hv-b', phase: 'Running' });
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test('helm upgrade keeps the CA and certificates (lookup), issues one for each new hypervisor Node, and tls.rotate=true replaces them', async () => {
    const secret = async (): Promise<Record<string, string>> => {
      const r = await cluster.kubectl(['get', 'secret', 'vmove-agent-tls', '-n', NS, '-o', 'json']);
      expect(r.stderr).toBe('');
      return (JSON.parse(r.stdout) as { data: Record<string, string> }).data;
    };
    const upgrade = (...set: string[]) => helmOk(['upgrade', 'vmove', CHART, '--namespace', NS, '--reuse-values', ...set.flatMap((x) => ['--set', x]), '--kubeconfig', cluster.kubeconfig]);
    const installed = await secret();
    // hv-a and hv-b (labelled hypervisors) were created after the install: the upgrade issues theirs.
    await upgrade();
    const upgraded = await secret();
    expect(upgraded['ca.crt']).toBe(installed['ca.crt']);
    expect(Object.keys(upgraded).filter((k) => k.endsWith('.crt')).sort()).toEqual(['ca.crt', 'hv-a.crt', 'hv-b.crt']);
    const hvA = new X509Certificate(Buffer.from(upgraded['hv-a.crt']!, 'base64'));
    expect(hvA.subjectAltName).toBe('DNS:hv-a');
    expect(hvA.checkIssued(new X509Certificate(Buffer.from(upgraded['ca.crt']!, 'base64')))).toBe(true);
    await upgrade();
    expect(await secret()).toEqual(upgraded);
    await upgrade('tls.rotate=true');
    const rotated = await secret();
    expect(rotated['ca.crt']).not.toBe(upgraded['ca.crt']);
    expect(rotated['hv-a.crt']).not.toBe(upgraded['hv-a.crt']);
    await upgrade('tls.rotate=false');
    expect((await secret())['ca.crt']).toBe(rotated['ca.crt']);
  });

  test('helm upgrade agent.enabled=false removes the agents; helm uninstall leaves the CRDs and the VMs', async () => {
    await helmOk(['upgrade', 'vmove', CHART, '--namespace', NS, '--reuse-values', '--set', 'agent.enabled=false', '--kubeconfig', cluster.kubeconfig]);
    const agentObjects = await cluster.kubectl(['get', 'daemonsets,serviceaccounts,roles', '-n', NS, '-l', 'app.kubernetes.io/component=vmove-agent', '-o', 'name']);
    expect(agentObjects).toMatchObject({ code: 0, stdout: '' });
    const ctl = await cluster.kubectl(['get', 'deployment', 'vmove-controller', '-n', NS, '-o', 'name']);
    expect(ctl.stdout.trim()).toBe('deployment.apps/vmove-controller');

    await helmOk(['uninstall', 'vmove', '--namespace', NS, '--kubeconfig', cluster.kubeconfig]);
    const gone = await cluster.kubectl(['get', 'deployment,clusterroles', '-A', '-l', 'app.kubernetes.io/instance=vmove', '-o', 'name']);
    expect(gone).toMatchObject({ code: 0, stdout: '' });
    // Helm never deletes CRDs, so uninstalling vmove deletes no VirtualMachine.
    const vms = await cluster.kubectl(['get', 'virtualmachines', '-n', 'default', '-o', 'name']);
    expect(vms).toMatchObject({ code: 0, stdout: 'virtualmachine.vmove.dev/web\n' });
  });
});
