// Fault injection for the end-to-end tests on real guests: act the moment an agent records an
// operation (the agent writes `<stateDir>/operations/<opId>.json` before it acts, and the
// controller writes the move's phase before it sends the step, so the file's appearance says
// which phase the move is in), cut TCP connections mid-stream (`ss -K`, which resets both
// ends as a proxy that closes would), and give a node's local storage folder a small tmpfs of
// its own. The last two need root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import type { OperationRecord } from '../../src/agent/operations';
import { vmFiles } from '../../src/drivers/qemu/paths';
import type { VmoveEnv } from './vmoveEnv';

/** The folder where `node`'s agent records its operations. */
export function operationsDir(env: VmoveEnv, node: string): string {
  const n = env.fleet.nodes.get(node);
  if (!n) throw new Error(`no fleet node ${node}`);
  return join(n.host.stateDir, 'operations');
}

/** The record of operation `opId` on `node`, as its agent last wrote it. */
export function operationRecord(env: VmoveEnv, node: string, opId: string): OperationRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(operationsDir(env, node), `${opId}.json`), 'utf8')) as OperationRecord;
  } catch {
    return undefined;
  }
}

/**
 * Run `act` (synchronously, so nothing else runs in between) as soon as `node`'s agent has
 * recorded operation `opId`: inotify on the operations folder, with a 5 ms look as a back-up.
 */
export function onOperationRecorded(env: VmoveEnv, node: string, opId: string, act: () => void, timeoutMs = 180_000): Promise<void> {
  const dir = operationsDir(env, node);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${opId}.json`);
  return new Promise((resolve, reject) => {
    let done = false;
    const fire = () => {
      if (done || !existsSync(file)) return;
      done = true;
      try {
        act();
        resolve();
      } catch (e) {
        reject(e as Error);
      } finally {
        watcher.close();
        clearInterval(look);
        clearTimeout(timer);
      }
    };
    const watcher = watch(dir, fire);
    const look = setInterval(fire, 5);
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      watcher.close();
      clearInterval(look);
      reject(new Error(`${node}'s agent did not record operation ${opId} within ${timeoutMs} ms`));
    }, timeoutMs);
    fire();
  });
}

/** The pid of the QEMU process that runs (or receives) the VM on `node`, from its pid file. */
export function qemuPid(env: VmoveEnv, node: string, vmId: string): number {
  const n = env.fleet.nodes.get(node)!;
  const pid = Number(readFileSync(vmFiles(n.host, vmId).pidFile, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no QEMU pid for ${vmId} on ${node}`);
  return pid;
}

/** The TCP port of a `tcp:host:port` URI. */
export const portOf = (uri: string): number => Number(uri.slice(uri.lastIndexOf(':') + 1));

/**
 * Reset every established TCP connection to one of `ports` on loopback (both ends see the
 * connection die mid-stream). Returns what `ss` listed as cut.
 */
export function cutConnections(ports: number[]): string {
  const filter = ports.flatMap((p, i) => [...(i ? ['or'] : []), 'dport', '=', `:${p}`]);
  return execFileSync('ss', ['-K', '-tn', 'state', 'established', '(', ...filter, ')'], { encoding: 'utf8' });
}

/** A tmpfs of `size` (e.g. `16m`) mounted on `dir` (which must exist); `unmount` undoes it. */
export function mountTmpfs(dir: string, size: string): { unmount(): void } {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'vmove-test-tmpfs', dir]);
  return {
    unmount() {
      try {
        execFileSync('umount', [dir]);
      } catch {
        // Something still holds a file there (a QEMU that has not quite gone): detach it lazily.
        execFileSync('umount', ['-l', dir]);
      }
    },
  };
}

/** Whether this process may mount filesystems and reset sockets (root). */
export const isRoot = (): boolean => process.getuid?.() === 0;
