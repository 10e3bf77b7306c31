// One `vmove agent` process (sim driver) on its own folders, as integration tests start them:
// the compiled CLI, the agent identity's kubeconfig (Lease, reports, TokenReview of callers),
// the endpoint read from --endpoint-file once it listens.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const CLI = resolve(__dirname, '../../dist/cli/main.js');

export interface AgentProcess {
  node: string;
  endpoint: string;
  proc: ChildProcess;
  stateDir: string;
  /** What it wrote to stderr so far (for failure messages). */
  stderr(): string;
}

export interface AgentProcessOptions {
  node: string;
  /** Folder for this node's state and local disks; `shared` and `images` are siblings of it. */
  work: string;
  agentKubeconfig: string;
  migrationPorts: [number, number];
  /** Folder of the node's certificate, key and the vmove CA (src/cluster/agentPki.ts issueNodeCert). */
  tlsDir: string;
  extraArgs?: string[];
}

export async function launchAgent(o: AgentProcessOptions): Promise<AgentProcess> {
  const dir = join(o.work, o.node);
  const endpointFile = join(dir, 'endpoint');
  await rm(endpointFile, { force: true });
  const stateDir = join(dir, 'state');
  const args = [
    CLI, 'agent',
    '--node', o.node,
    '--driver', 'sim',
    '--kubeconfig', o.agentKubeconfig,
    '--auth', 'tokenreview',
    '--state-dir', stateDir,
    '--local-dir', join(dir, 'local'),
    '--shared-dir', join(o.work, 'shared'),
    '--images-dir', join(o.work, 'images'),
    '--migration-ports', `${o.migrationPorts[0]}-${o.migrationPorts[1]}`,
    '--cpu', '8',
    '--memory', '16Gi',
    '--sim-time-scale', '10',
    '--endpoint-file', endpointFile,
    '--tls-dir', o.tlsDir,
    ...(o.extraArgs ?? []),
  ];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, VMOVE_LOG_LEVEL: 'warn' } });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 20_000;
  while (!existsSync(endpointFile)) {
    if (proc.exitCode !== null) throw new Error(`agent ${o.node} exited ${proc.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`agent ${o.node} did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { node: o.node, endpoint: (await readFile(endpointFile, 'utf8')).trim(), proc, stateDir, stderr: () => stderr };
}

export async function stopAgent(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
