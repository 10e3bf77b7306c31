// The agent steps the machines' states ask for: how a machine writes one, and the key that names
// a state's step in operation ids. Pure.
import type { MovePhase } from '../api/types';
import type { MoveContext, Step } from './vocabulary';

export const onSource = (name: string, request: Step['request'], resources: Step['resources'] = 'before'): Step => ({ name, role: 'source', resources, request });
export const onTarget = (name: string, request: Step['request'], resources: Step['resources'] = 'after'): Step => ({ name, role: 'target', resources, request });

/**
 * The key of the step a state runs, as used in operation ids: `<attempt>.<step>`, unique for the
 * whole move, so a late result of an earlier attempt's step can never pass for the current one's.
 */
export function stepName(state: MovePhase, ctx: MoveContext): string {
  // Named after the rollback step, not its index: dropping a lost host's steps shifts the indices.
  if (state === 'RollingBack') return `${ctx.attempt}.rollback-${ctx.rollback?.steps[ctx.rollback.index]?.name ?? 'done'}-${ctx.stepTry}`;
  if (state === 'CleaningUp') return `${ctx.attempt}.cleanup-${ctx.stepTry}`;
  return `${ctx.attempt}.${state.replace(/[A-Z]/g, (c, i: number) => (i ? '-' : '') + c.toLowerCase())}`;
}
