// `vmove controller`: the cluster brain. Leader-elected; exits when it loses the lease so a
// restart (by its Deployment, or by `make run`) starts clean from what the API server holds.
import { readFileSync, statSync } from 'node:fs';
import { AGENT_AUDIENCE } from '../protocol/host';
import { parseServiceAccount, tokenFromFile, tokenFromTokenRequest } from '../kube/audienceToken';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { defaultConfig } from '../controller/config';
import { startController } from '../controller/manager';
import { KubeApi } from '../kube/api';
import { componentLogger } from '../log';

const USAGE = `usage: vmove controller [options]

  --kubeconfig PATH          API server credentials (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --namespace NS             where agent and leader Leases live (default vmove-system)
  --agent-token-file PATH    bearer token shown to agents: a projected ServiceAccount token with the vmove-agent
                             audience (re-read when it changes). Default: TokenRequest for --agent-token-service-account,
                             renewed before it expires
  --agent-token-service-account NS/NAME  (default vmove-system/vmove-controller)
  --agent-ca-file PATH       the vmove CA agents' certificates must chain to (re-read when it changes); each agent's
                             certificate must name its node. Required unless every agent serves --insecure-http
  --insecure-migration       migration streams in plaintext for every move (default: TLS; a MoveRequest can ask for
                             plaintext with spec.policy.insecureMigration)
  --identity NAME            leader-election identity (default: hostname-pid)
  --metrics-address ADDR     serve /metrics, /healthz, /readyz (e.g. :8080)
  --parallel-moves N         moves transferring at once in the cluster (default 5; a move
                             verifying or cleaning up on its target no longer counts)
  --outbound-per-node N      moves leaving one node at once (default 2)
  --inbound-per-node N       moves arriving on one node at once (default 2)
  --workers N                reconciles at once per kind (default 8)
  --auto-evacuate-dead-hosts create a HostEvacuation for a dead, fenced host (default off)
  --dead-host-after-seconds N a host is dead N s after its agent's Lease expired, if its Node is not Ready (default 40)
  --no-leader-election       act without the lease (a single replica only)
  --shard NAME               run one shard: only Nodes and VirtualMachines labelled vmove.dev/shard=NAME, the
                             MoveRequests of those VMs, the HostEvacuations of those Nodes; Lease vmove-controller-NAME
  --priority-aging-seconds N a waiting move rises one priority class (User → Maintenance → Critical) per N s it
                             waits, so low-priority moves still start under a steady stream of Critical ones (default 120)

Cluster defaults for what a MoveRequest's spec.mode / spec.policy and a matching MovePolicy leave unsaid:
  --default-mode Auto|Live|Cold            (Auto)
  --default-max-downtime-ms N              (300)    --default-bandwidth-mibps N (0 = unlimited)
  --default-progress-timeout-seconds N     (150)    --default-completion-timeout-per-gib N (150)
  --default-max-attempts N                 (3)      --default-allow-auto-converge true|false (true)
  --default-allow-post-copy true|false     (false)
`;

/** The file's text, read again when it changes. */
function pemFromFile(path: string): () => string {
  let seen: { stamp: string; text: string } | undefined;
  return () => {
    const st = statSync(path);
    const stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    if (seen?.stamp !== stamp) seen = { stamp, text: readFileSync(path, 'utf8') };
    return seen.text;
  };
}

export async function controllerCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string', default: 'vmove-system' },
      'agent-token-file': { type: 'string' },
      'agent-token-service-account': { type: 'string', default: 'vmove-system/vmove-controller' },
      'agent-ca-file': { type: 'string' },
      'insecure-migration': { type: 'boolean', default: false },
      identity: { type: 'string' },
      'metrics-address': { type: 'string' },
      'parallel-moves': { type: 'string' },
      'outbound-per-node': { type: 'string' },
      'inbound-per-node': { type: 'string' },
      workers: { type: 'string' },
      'auto-evacuate-dead-hosts': { type: 'boolean', default: false },
      'dead-host-after-seconds': { type: 'string' },
      'no-leader-election': { type: 'boolean', default: false },
      shard: { type: 'string' },
      'priority-aging-seconds': { type: 'string' },
      'default-mode': { type: 'string' },
      'default-max-downtime-ms': { type: 'string' },
      'default-bandwidth-mibps': { type: 'string' },
      'default-progress-timeout-seconds': { type: 'string' },
      'default-completion-timeout-per-gib': { type: 'string' },
      'default-max-attempts': { type: 'string' },
      'default-allow-auto-converge': { type: 'string' },
      'default-allow-post-copy': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = componentLogger('controller');
  const api = await KubeApi.fromFile(values.kubeconfig);
  const base = defaultConfig();
  const num = (v: string | undefined, d: number): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`expected a number ≥ 0, got "${v}"`);
    return n;
  };
  const bool = (v: string | undefined, d: boolean): boolean => (v === undefined ? d : v === 'true');
  const p = base.policyDefaults;
  const mode = values['default-mode'] ?? base.defaultMode;
  if (mode !== 'Auto' && mode !== 'Live' && mode !== 'Cold') throw new Error(`--default-mode must be Auto, Live or Cold, got "${mode}"`);
  const aging = num(values['priority-aging-seconds'], base.priorityAgingSeconds);
  if (aging < 1) throw new Error(`--priority-aging-seconds must be at least 1, got "${values['priority-aging-seconds']}"`);
  const config = defaultConfig({
    namespace: values.namespace!,
    identity: values.identity ?? `${hostname()}-${process.pid}`,
    limits: {
      parallelMoves: num(values['parallel-moves'], base.limits.parallelMoves),
      outboundPerNode: num(values['outbound-per-node'], base.limits.outboundPerNode),
      inboundPerNode: num(values['inbound-per-node'], base.limits.inboundPerNode),
    },
    workers: num(values.workers, base.workers),
    ...(values.shard ? { shard: shardName(values.shard) } : {}),
    autoEvacuateDeadHosts: values['auto-evacuate-dead-hosts']!,
    deadHostAfterSeconds: num(values['dead-host-after-seconds'], base.deadHostAfterSeconds),
    defaultMode: mode,
    priorityAgingSeconds: aging,
    // What a MoveRequest's spec.policy leaves unsaid.
    policyDefaults: {
      maxDowntimeMs: num(values['default-max-downtime-ms'], p.maxDowntimeMs),
      bandwidthMiBps: num(values['default-bandwidth-mibps'], p.bandwidthMiBps),
      progressTimeoutSeconds: num(values['default-progress-timeout-seconds'], p.progressTimeoutSeconds),
      completionTimeoutPerGiB: num(values['default-completion-timeout-per-gib'], p.completionTimeoutPerGiB),
      maxAttempts: num(values['default-max-attempts'], p.maxAttempts),
      allowAutoConverge: bool(values['default-allow-auto-converge'], p.allowAutoConverge),
      allowPostCopy: bool(values['default-allow-post-copy'], p.allowPostCopy),
      insecureMigration: values['insecure-migration']!,
    },
  });
  const tokenFile = values['agent-token-file'];
  const sa = parseServiceAccount(values['agent-token-service-account']!);
  const agentToken = tokenFile ? tokenFromFile(tokenFile) : tokenFromTokenRequest(api, { namespace: sa.namespace, serviceAccount: sa.name, audience: AGENT_AUDIENCE });
  const caFile = values['agent-ca-file'];
  if (!caFile) log.warn('no --agent-ca-file: agents serving HTTPS will not be trusted (only --insecure-http agents can be reached)');
  if (config.policyDefaults.insecureMigration) log.warn('--insecure-migration: every migration stream crosses the network in plaintext');
  const agentCa = caFile ? pemFromFile(caFile) : undefined;
  const running = startController({ api, config, agentToken, ...(agentCa ? { agentCa } : {}), metricsAddress: values['metrics-address'], leaderElection: !values['no-leader-election'] });
  const shutdown = (signal: string) => {
    log.info({ signal }, 'stopping');
    void running.stop();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  const how = await running.done;
  api.close();
  if (how === 'lost') {
    log.error('leadership lost: exiting so nothing acts without the lease');
    return 1;
  }
  return 0;
}

/** A shard's name is a label value (and part of a Lease name). */
function shardName(v: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v)) throw new Error(`--shard must be a lowercase label value (letters, digits, '-'), got "${v}"`);
  return v;
}
