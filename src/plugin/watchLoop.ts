// The thin loop behind `watch`, `move --watch` and `evacuate --watch`: an informer (list, then
// watch, resumed or relisted when it breaks — never a polling loop) feeds the latest MoveRequests
// to the pure renderer; a terminal gets the table redrawn in place, anything else a plain line
// per change. It ends when every watched move (and the evacuation, if one) has ended.
import type { HostEvacuation, MoveRequest } from '../api/types';
import type { KubeApi } from '../kube/api';
import { Informer } from '../kube/informer';
import { keyOf, vmovePath } from '../kube/paths';
import { BadInput, EXIT } from './errors';
import { exitCodeOf, moveRow, TERMINAL_PHASES, type MoveRow } from './moveRow';
import { plainLine, screen, summary } from './render';
import { nextRateSample, type RateSample } from './transferRate';

export interface WatchScope {
  /** undefined: every namespace. */
  namespace?: string;
  /** Watch these moves (in `namespace`); otherwise the ones in flight, and those that start later. */
  names?: string[];
  labelSelector?: string;
  /** A HostEvacuation whose moves these are: the watch also waits for it to end, and its phase is the result. */
  evacuation?: string;
}

export interface Terminal {
  write(text: string): void;
  isTTY: boolean;
  columns(): number;
  onResize?(fn: () => void): () => void;
}

/** Redraws of a terminal at most this often; status arrives every ~2 s per move. */
const REDRAW_MS = 200;
const SYNC_TIMEOUT_MS = 30_000;

const ANSI = { up: (n: number) => `\x1b[${n}F`, clearDown: '\x1b[J', hideCursor: '\x1b[?25l', showCursor: '\x1b[?25h' };

export async function watchMoves(api: KubeApi, scope: WatchScope, term: Terminal, signal?: AbortSignal): Promise<number> {
  const path = vmovePath('moverequests', scope.namespace ? { namespace: scope.namespace } : {});
  // One plain request first: a missing CRD, a refused identity or no server fails here, with its
  // reason, instead of the informer retrying quietly for ever.
  await api.request('GET', path, { query: { limit: 1, labelSelector: scope.labelSelector } });
  const moves = new Informer<MoveRequest>(api, path, { name: 'plugin-moves', ...(scope.labelSelector ? { labelSelector: scope.labelSelector } : {}) });
  const evacuations = scope.evacuation ? new Informer<HostEvacuation>(api, vmovePath('hostevacuations'), { name: 'plugin-evacuations' }) : undefined;

  const watched = new Set<string>();
  const samples = new Map<string, RateSample>();
  const printed = new Map<string, string>();
  let frameLines = 0;
  let synced = false;
  let timer: NodeJS.Timeout | undefined;
  let finish!: (code: number) => void;
  const finished = new Promise<number>((r) => (finish = r));

  const qualify = scope.namespace === undefined;
  const evacuation = (): HostEvacuation | undefined => (scope.evacuation ? evacuations?.get(scope.evacuation) : undefined);
  const rows = (): MoveRow[] =>
    [...watched].sort().map((key) => {
      const mr = moves.get(key);
      if (!mr) return { name: key, vm: '?', phase: 'Deleted', terminal: true, waiting: false, note: 'the MoveRequest was deleted' };
      const rate = samples.get(key)?.bytesPerSecond;
      return moveRow(mr, { qualify, ...(rate !== undefined ? { transferBytesPerSecond: rate } : {}) });
    });
  const title = (): string | undefined => {
    const e = evacuation();
    if (!scope.evacuation) return undefined;
    const s = e?.status;
    return `HostEvacuation ${scope.evacuation} of ${e?.spec.nodeName ?? '?'}: ${s?.phase ?? 'Pending'}${s?.total !== undefined ? ` (${s.succeeded ?? 0}/${s.total} done, ${s.inProgress ?? 0} in progress, ${s.pending ?? 0} pending, ${s.failed ?? 0} failed)` : ''}${s?.message ? ` — ${s.message}` : ''}`;
  };
  const ended = (): boolean => {
    const e = evacuation();
    if (scope.evacuation) return !!e?.status?.phase && TERMINAL_PHASES.includes(e.status.phase) && rows().every((r) => r.terminal);
    return watched.size > 0 && rows().every((r) => r.terminal);
  };

  const draw = (): void => {
    timer = undefined;
    const r = rows();
    if (term.isTTY) {
      const lines = screen(r, { width: term.columns(), ...(title() ? { title: title()! } : {}) });
      term.write(`${frameLines ? ANSI.up(frameLines) : ''}${ANSI.clearDown}${lines.join('\n')}\n`);
      frameLines = lines.length;
    } else {
      const t = title();
      if (t && printed.get('') !== t) {
        printed.set('', t);
        term.write(`${new Date().toISOString()} ${t}\n`);
      }
      for (const row of r) {
        const line = plainLine(row);
        if (printed.get(row.name) === line) continue;
        printed.set(row.name, line);
        term.write(`${new Date().toISOString()} ${line}\n`);
      }
    }
  };
  const changed = (): void => {
    if (!synced) return;
    if (ended()) {
      if (timer) clearTimeout(timer);
      draw();
      finish(result());
      return;
    }
    timer ??= setTimeout(draw, term.isTTY ? REDRAW_MS : 0);
  };
  const result = (): number => {
    if (scope.evacuation) return evacuation()?.status?.phase === 'Succeeded' ? EXIT.ok : EXIT.failed;
    return exitCodeOf(rows());
  };

  moves.on({
    onChange: (mr) => {
      const key = keyOf(mr);
      // Moves that start after the watch began join it (an evacuation creates them as it goes).
      if (synced && !scope.names && !watched.has(key)) watched.add(key);
      if (watched.has(key)) samples.set(key, nextRateSample(samples.get(key), mr, Date.now()));
      changed();
    },
    // A deleted move stays in the view as Deleted (its row is built from the missing object).
    onDelete: () => changed(),
  });
  evacuations?.on({ onChange: (e) => e.metadata.name === scope.evacuation && changed() });

  const stopAll = (): void => {
    moves.stop();
    evacuations?.stop();
    if (timer) clearTimeout(timer);
  };
  const unResize = term.isTTY ? term.onResize?.(() => synced && draw()) : undefined;
  const onAbort = (): void => finish(EXIT.interrupted);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    moves.start();
    evacuations?.start();
    await withTimeout(Promise.all([moves.hasSynced, evacuations?.hasSynced]), SYNC_TIMEOUT_MS, 'listing MoveRequests');
    if (scope.names) {
      for (const name of scope.names) {
        const key = `${scope.namespace}/${name}`;
        if (!moves.get(key)) throw new BadInput(`MoveRequest "${name}" not found in namespace "${scope.namespace}"`);
        watched.add(key);
      }
    } else {
      for (const mr of moves.list()) if (!TERMINAL_PHASES.includes(mr.status?.phase ?? 'Pending')) watched.add(keyOf(mr));
      if (!watched.size && !scope.evacuation) {
        term.write(`no moves in flight${scope.namespace ? ` in namespace ${scope.namespace}` : ''}\n`);
        return EXIT.ok;
      }
    }
    for (const key of watched) {
      const mr = moves.get(key);
      if (mr) samples.set(key, nextRateSample(undefined, mr, Date.now()));
    }
    if (term.isTTY) term.write(ANSI.hideCursor);
    synced = true;
    changed();
    if (!ended()) draw();
    const code = await finished;
    if (!term.isTTY) term.write(`${summary(rows(), title())}\n`);
    return code;
  } finally {
    stopAll();
    unResize?.();
    signal?.removeEventListener('abort', onAbort);
    if (term.isTTY) term.write(ANSI.showCursor);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s ${what}`)), ms);
    }),
  ]);
}
