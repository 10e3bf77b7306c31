// Runs the real kubectl against a kubeconfig. Never throws for a non-zero exit: callers
// (and tests) look at code/stdout/stderr themselves.
import { spawn } from 'node:child_process';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  input?: string;
  timeoutMs?: number;
}

export function kubectl(kubeconfig: string, args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 60_000,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({
        code: code ?? 128,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: signal ? `${stderr}kubectl ${args.join(' ')}: killed by ${signal} (timeout?)\n` : stderr,
      });
    });
    child.stdin.on('error', () => undefined); // kubectl may exit before reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** kubectl that throws with its stderr when it fails — for set-up steps that must succeed. */
export async function kubectlOrThrow(kubeconfig: string, args: string[], opts: KubectlOptions = {}): Promise<string> {
  const r = await kubectl(kubeconfig, args, opts);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}
