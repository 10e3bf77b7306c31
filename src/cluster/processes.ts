// Long-running child processes (etcd, kube-apiserver) that must never outlive their owner
// by accident.
//
// - lifetime 'parent': the child is exec'd through `setpriv --pdeathsig KILL`, so the kernel
//   kills it the moment the Node process that spawned it dies, however it dies (SIGKILL,
//   crash, jest tearing down a worker). Pid files plus sweepOrphans() are the second line.
// - lifetime 'detached': the child outlives the CLI that started it (`vmove cluster up`);
//   its pid file is how `down` and `status` find it again.
//
// Either way the child leads its own process group, so stopping signals the whole group.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export type Lifetime = 'parent' | 'detached';

export interface DaemonSpec {
  name: string;
  executable: string;
  args: string[];
  logFile: string;
  pidFile: string;
  lifetime: Lifetime;
}

export interface Daemon {
  name: string;
  pid: number;
  executable: string;
  /** Resolves with the exit code (or signal name) when the process ends; 'parent' lifetime only. */
  exited: Promise<string>;
}

export function startDaemon(spec: DaemonSpec): Daemon {
  const log = openSync(spec.logFile, 'w');
  const [command, args] =
    spec.lifetime === 'parent'
      ? ['setpriv', ['--pdeathsig', 'KILL', '--', spec.executable, ...spec.args]]
      : [spec.executable, spec.args];
  try {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', log, log] });
    if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${command})`);
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) => resolve(signal ?? String(code)));
      child.once('error', (err) => resolve(err.message));
    });
    if (spec.lifetime === 'detached') child.unref();
    writeFileSync(spec.pidFile, `${child.pid}\n`);
    return { name: spec.name, pid: child.pid, executable: spec.executable, exited };
  } finally {
    closeSync(log);
  }
}

/** True while some process has this pid (of any program). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True while `pid` is a live (not zombie) process running `executable` — guards against pid reuse. */
export function isRunning(pid: number, executable: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    // Just after spawn, a 'parent' child may still be setpriv about to exec the executable.
    const runs = argv[0] === executable || (argv[0] === 'setpriv' && argv.includes(executable));
    if (!runs) return false;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function readPidFile(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM the process group, SIGKILL it after `graceMs`; resolves once the process is gone. */
export async function stopDaemon(pid: number, executable: string, graceMs = 5000): Promise<void> {
  if (!isRunning(pid, executable)) return;
  signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isRunning(pid, executable)) {
    if (Date.now() >= deadline) {
      signalGroup(pid, 'SIGKILL');
      while (isRunning(pid, executable)) await sleep(20);
      return;
    }
    await sleep(20);
  }
}

/** Synchronous last resort for process 'exit' handlers, where nothing async runs any more. */
export function killNow(pid: number, executable: string): void {
  if (isRunning(pid, executable)) signalGroup(pid, 'SIGKILL');
}
