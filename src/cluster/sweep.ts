// Second line of defence against orphans: instances started with lifetime 'parent' whose
// owner died without stopping them (should setpriv's parent-death signal ever have missed).
// Run before starting new instances under the same base folder.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { componentLogger } from '../log';
import { killNow, processExists } from './processes';
import { instancePaths, readState } from './state';

const log = componentLogger('cluster');

/** Folders without a state file are only removed once this old (a start may be under way). */
const UNCLAIMED_FOLDER_AGE_MS = 10 * 60_000;

export function sweepOrphans(baseDir: string, prefix: string): number {
  let entries: string[];
  try {
    entries = readdirSync(baseDir).filter((e) => e.startsWith(prefix));
  } catch {
    return 0;
  }
  let swept = 0;
  for (const entry of entries) {
    const dir = join(baseDir, entry);
    const state = readState(instancePaths(dir));
    if (state) {
      if (state.lifetime !== 'parent' || processExists(state.ownerPid)) continue;
      for (const p of [state.kubeApiserver, state.etcd]) if (p) killNow(p.pid, p.executable);
    } else {
      try {
        if (Date.now() - statSync(dir).mtimeMs < UNCLAIMED_FOLDER_AGE_MS) continue;
      } catch {
        continue;
      }
    }
    rmSync(dir, { recursive: true, force: true });
    swept++;
  }
  if (swept > 0) log.info({ baseDir, swept }, 'removed control planes left by dead processes');
  return swept;
}
