// The tools some tests run, built or installed by the repository's own hack/ scripts (cached in
// ~/.cache/vmove, so only a machine's first run waits for a build): promtool, hack/kstatus,
// hack/promql, and Lua interpreters. `make test` runs the scripts first; a test run alone calls
// them here and finds what they print.
import { execFileSync, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

export const REPO = resolve(__dirname, '..', '..');

/** A first build from Go modules takes minutes; give a test's beforeAll this long. */
export const TOOL_BUILD_TIMEOUT_MS = 20 * 60_000;

/** Runs hack/<script> and returns the lines it prints (the tools' paths). */
function hackScript(script: string, ...args: string[]): string[] {
  try {
    return execFileSync('bash', [join(REPO, 'hack', script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 * 1024 * 1024 })
      .trim()
      .split('\n');
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '');
    throw new Error(`hack/${script} ${args.join(' ')} failed:\n${stderr.trim().split('\n').slice(-20).join('\n')}`);
  }
}

export const promtoolPath = (): string => hackScript('build-promtool.sh').pop()!;
export const goToolPath = (name: 'grafana' | 'kstatus' | 'promql'): string => hackScript('build-go-tool.sh', name).pop()!;
/** The Lua interpreters health checks are run with: lua5.1 (Argo CD's dialect) and lua5.4. */
export const luaPaths = (): string[] => hackScript('install-lua.sh');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(binary: string, args: string[], o: { input?: string; cwd?: string } = {}): Run {
  const r = spawnSync(binary, args, { input: o.input ?? '', cwd: o.cwd ?? REPO, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}
