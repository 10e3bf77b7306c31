// What each `kubectl vmove` command does against the API server. The decisions (arguments,
// objects, rows, tables) live in the pure modules; this file only reads, writes and waits.
import type { HostEvacuation, MoveRequest, VirtualMachine } from '../api/types';
import { planTable } from '../cli/plan';
import { isNotFound, type KubeApi } from '../kube/api';
import { Informer } from '../kube/informer';
import { corePath, vmovePath } from '../kube/paths';
import type { Command } from './args';
import type { Connection } from './connection';
import { BadInput, EXIT } from './errors';
import { historyTable } from './historyTable';
import { evacuationFor, moveRequestFor } from './manifests';
import { TERMINAL_PHASES } from './moveRow';
import { watchMoves, type Terminal } from './watchLoop';

export interface Io {
  out: Terminal;
  signal?: AbortSignal;
}

const PLAN_TIMEOUT_MS = 60_000;

export async function runCommand(c: Exclude<Command, { kind: 'help' }>, conn: Connection, allNamespaces: boolean, io: Io): Promise<number> {
  const { api, namespace } = conn;
  const say = (line: string): void => io.out.write(`${line}\n`);
  switch (c.kind) {
    case 'move': {
      const vm = await api.find<VirtualMachine>(vmovePath('virtualmachines', { namespace, name: c.vm }));
      if (!vm) throw new BadInput(`VirtualMachine "${c.vm}" not found in namespace "${namespace}"`);
      if (c.to && !(await api.find(corePath('nodes', { name: c.to })))) throw new BadInput(`node "${c.to}" not found`);
      const created = await api.create<MoveRequest>(vmovePath('moverequests', { namespace }), moveRequestFor(c, namespace));
      say(`moverequest.vmove.dev/${created.metadata.name} created`);
      if (!c.watch) return EXIT.ok;
      return watchMoves(api, { namespace, names: [created.metadata.name!] }, io.out, io.signal);
    }
    case 'watch':
      return watchMoves(api, { ...(allNamespaces ? {} : { namespace }), ...(c.moves.length ? { names: c.moves } : {}) }, io.out, io.signal);
    case 'cancel': {
      const path = vmovePath('moverequests', { namespace, name: c.move });
      const mr = await findMove(api, path, c.move, namespace);
      const phase = mr.status?.phase;
      if (phase && TERMINAL_PHASES.includes(phase)) {
        say(`moverequest.vmove.dev/${c.move} already ended ${phase}: nothing to cancel`);
        return EXIT.ok;
      }
      await api.mergePatch(path, { spec: { cancel: true } });
      say(`moverequest.vmove.dev/${c.move} cancel requested${mr.spec.cancel ? ' (already)' : ''}`);
      return EXIT.ok;
    }
    case 'history': {
      const mr = await findMove(api, vmovePath('moverequests', { namespace, name: c.move }), c.move, namespace);
      for (const line of historyTable(mr, Date.now())) say(line);
      return EXIT.ok;
    }
    case 'evacuate': {
      if (!(await api.find(corePath('nodes', { name: c.node })))) throw new BadInput(`node "${c.node}" not found`);
      const created = await api.create<HostEvacuation>(vmovePath('hostevacuations'), evacuationFor(c.node, c.dryRun));
      const name = created.metadata.name!;
      say(`hostevacuation.vmove.dev/${name} created${c.dryRun ? ' (dry run: nothing moves)' : ''}`);
      if (c.dryRun) {
        const planned = await evacuationEnded(api, name, io.signal);
        const s = planned.status ?? {};
        say('');
        io.out.write(planTable({ node: c.node, ...(s.hostState ? { hostState: s.hostState } : {}), mode: planned.spec.mode ?? 'Auto', ...(s.message ? { message: s.message } : {}), plan: s.plan ?? [] }));
        return s.phase === 'Succeeded' ? EXIT.ok : EXIT.failed;
      }
      if (!c.watch) return EXIT.ok;
      return watchMoves(api, { labelSelector: `vmove.dev/evacuation=${name}`, evacuation: name }, io.out, io.signal);
    }
  }
}

async function findMove(api: KubeApi, path: string, name: string, namespace: string): Promise<MoveRequest> {
  try {
    return await api.get<MoveRequest>(path);
  } catch (e) {
    if (isNotFound(e)) throw new BadInput(`MoveRequest "${name}" not found in namespace "${namespace}"`);
    throw e;
  }
}

/** The HostEvacuation once it reached a final phase (a dry run does at its first reconcile). */
async function evacuationEnded(api: KubeApi, name: string, signal?: AbortSignal): Promise<HostEvacuation> {
  const informer = new Informer<HostEvacuation>(api, vmovePath('hostevacuations'), { name: 'plugin-evacuation' });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<HostEvacuation>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no plan after ${PLAN_TIMEOUT_MS / 1000} s: is the vmove controller running?`)), PLAN_TIMEOUT_MS);
      signal?.addEventListener('abort', () => reject(new Error('interrupted')), { once: true });
      informer.on({
        onChange: (e) => {
          if (e.metadata.name === name && e.status?.phase && TERMINAL_PHASES.includes(e.status.phase)) resolve(e);
        },
      });
      informer.start();
    });
  } finally {
    clearTimeout(timer);
    informer.stop();
  }
}
