// Where the CPU of a benchmark round goes (`--cpu-prof`): V8 CPU profiles of the controller
// (Node's --cpu-prof, written when it exits) and of the benchmark process with its agents (the
// inspector's profiler), and kube-apiserver's own Go profile from /debug/pprof. Each is saved as
// a file the usual tools open (Chrome DevTools for .cpuprofile, `go tool pprof` for .pprof) and
// summed up here: self time by function and by package.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { KubeApi } from '../kube/api';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** A V8 CPU profile (.cpuprofile), as --cpu-prof and the inspector write it. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/** Which package a frame's code is in: a node_modules package, vmove's own code, Node, or V8's own work. */
function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return 'node (runtime)';
  const dist = url.indexOf('/dist/');
  return dist >= 0 ? `vmove ${url.slice(dist + '/dist/'.length).split('/')[0]}/` : url;
}

/** Self time of each function (and of each package), largest first. */
export function selfTimes(p: CpuProfile): { total: number; functions: SelfTime[]; packages: SelfTime[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    if (!n || n.callFrame.functionName === '(idle)') return;
    total += ms;
    const { functionName, url, lineNumber } = n.callFrame;
    const where = url ? ` ${path.basename(url)}:${lineNumber + 1}` : '';
    const name = `${functionName || '(anonymous)'}${where}`;
    fn.set(name, (fn.get(name) ?? 0) + ms);
    const k = packageOf(url, functionName);
    pkg.set(k, (pkg.get(k) ?? 0) + ms);
  });
  const sorted = (m: Map<string, number>): SelfTime[] =>
    [...m.entries()].map(([name, ms]) => ({ name, ms, share: total ? ms / total : 0 })).sort((a, b) => b.ms - a.ms);
  return { total, functions: sorted(fn), packages: sorted(pkg) };
}

export const readCpuProfile = (file: string): CpuProfile => JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;

/** Profile this process (the benchmark and its in-process agents) until the returned stop is called; stop saves it to `file`. */
export async function profileThisProcess(file: string): Promise<() => Promise<CpuProfile>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // 1 ms between samples (V8's default is 1 ms too; said here so the figures say what they are).
  await session.post('Profiler.setSamplingInterval', { interval: 1000 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
    session.disconnect();
    writeFileSync(file, JSON.stringify(profile));
    return profile;
  };
}

/**
 * kube-apiserver's CPU profile over the next `seconds` (its /debug/pprof/profile, on by default
 * with --profiling), saved to `file`; answers `go tool pprof -top`'s lines, or why there are none.
 */
export async function profileApiServer(api: KubeApi, seconds: number, file: string, nodes = 15): Promise<string[]> {
  const bytes = await api.getBytes('/debug/pprof/profile', { seconds }, (seconds + 30) * 1000);
  writeFileSync(file, bytes);
  try {
    const { stdout } = await promisify(execFile)('go', ['tool', 'pprof', '-top', `-nodecount=${nodes}`, file], { maxBuffer: 8 << 20 });
    return stdout.split('\n').filter((l) => l.trim());
  } catch (err) {
    return [`(go tool pprof could not read it: ${err instanceof Error ? err.message.split('\n')[0] : String(err)})`];
  }
}

/** What one profiled round brought: the controller's profile (if it wrote one), this process's, and kube-apiserver's top lines. */
export interface RoundProfiles {
  controller?: CpuProfile;
  here: CpuProfile;
  apiserverTop: string[];
}

/**
 * Profile one benchmark round, its files under `dir` named by `label`: this process and
 * kube-apiserver from now on; the controller is to be started with --cpu-prof-dir=`controllerDir`
 * and stopped by `finish`, since Node writes its profile as it exits.
 */
export async function profileRound(dir: string, label: string, api: KubeApi, apiserverSeconds: number) {
  const controllerDir = path.join(dir, `controller-${label}`);
  mkdirSync(controllerDir);
  const stopHere = await profileThisProcess(path.join(dir, `bench-and-agents-${label}.cpuprofile`));
  const apiserverTop = profileApiServer(api, apiserverSeconds, path.join(dir, `kube-apiserver-${label}.pprof`));
  return {
    controllerDir,
    async finish(stopController: () => Promise<void>): Promise<RoundProfiles> {
      const here = await stopHere();
      await stopController();
      const [file] = readdirSync(controllerDir).filter((f) => f.endsWith('.cpuprofile'));
      return { ...(file ? { controller: readCpuProfile(path.join(controllerDir, file)) } : {}), here, apiserverTop: await apiserverTop };
    },
  };
}
