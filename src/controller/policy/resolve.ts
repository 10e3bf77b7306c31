// Which policy a move uses: field by field, the MoveRequest's own spec (mode, policy.*) > the
// matching MovePolicy > the controller's --default-* flags > vmove's built-in defaults (the last
// two are already one value in ControllerConfig: the flags' defaults are the built-in ones).
// Resolved once, at intake; the move then reads status.effectivePolicy, never spec again. Pure.
import type { EffectivePolicy, LabelSelector, MoveMode, MovePolicy, MoveRequest } from '../../api/types';
import type { ResolvedPolicy } from '../../machines/vocabulary';
import { matchesSelector } from '../hostevacuation/vms';

export interface PolicyDefaults {
  /** --default-mode (built-in: Auto). */
  mode: MoveMode;
  /** --default-* (built-in: DEFAULT_POLICY). */
  policy: ResolvedPolicy;
}

export interface PolicyResolution {
  /** The MovePolicy that matched; '' when none did. */
  policyRef: string;
  effective: EffectivePolicy;
}

/** How many labels a selector names: each matchLabels pair and each matchExpressions entry. */
const weight = (s: LabelSelector | undefined): number => Object.keys(s?.matchLabels ?? {}).length + (s?.matchExpressions?.length ?? 0);

/** The number of labels a policy matches with, or undefined when it does not apply to the VM. */
export function policyMatch(p: MovePolicy, vmLabels: Record<string, string> | undefined, namespaceLabels: Record<string, string> | undefined): number | undefined {
  const s = p.spec.selectors;
  if (!matchesSelector(namespaceLabels, s?.namespaceSelector) || !matchesSelector(vmLabels, s?.vmSelector)) return undefined;
  return weight(s?.namespaceSelector) + weight(s?.vmSelector);
}

/**
 * The policy for a VM: of the policies that match, the one matching the most labels; a tie goes
 * to the name first in alphabetical order (KubeVirt's MigrationPolicy rule).
 */
export function matchingPolicy(policies: readonly MovePolicy[], vmLabels: Record<string, string> | undefined, namespaceLabels: Record<string, string> | undefined): MovePolicy | undefined {
  let best: { p: MovePolicy; n: number } | undefined;
  for (const p of policies) {
    if (p.metadata.deletionTimestamp) continue;
    const n = policyMatch(p, vmLabels, namespaceLabels);
    if (n === undefined) continue;
    if (!best || n > best.n || (n === best.n && (p.metadata.name ?? '') < (best.p.metadata.name ?? ''))) best = { p, n };
  }
  return best?.p;
}

export function resolveEffectivePolicy(
  mr: Pick<MoveRequest, 'spec'>,
  input: { policies: readonly MovePolicy[]; vmLabels?: Record<string, string>; namespaceLabels?: Record<string, string>; defaults: PolicyDefaults },
): PolicyResolution {
  const match = matchingPolicy(input.policies, input.vmLabels, input.namespaceLabels);
  const own = mr.spec.policy ?? {};
  const pol = match?.spec ?? {};
  const d = input.defaults.policy;
  return {
    policyRef: match?.metadata.name ?? '',
    effective: {
      mode: mr.spec.mode ?? pol.mode ?? input.defaults.mode,
      maxDowntimeMs: own.maxDowntimeMs ?? pol.maxDowntimeMs ?? d.maxDowntimeMs,
      bandwidthMiBps: own.bandwidthMiBps ?? pol.bandwidthMiBps ?? d.bandwidthMiBps,
      completionTimeoutPerGiB: own.completionTimeoutPerGiB ?? pol.completionTimeoutPerGiB ?? d.completionTimeoutPerGiB,
      progressTimeoutSeconds: own.progressTimeoutSeconds ?? pol.progressTimeoutSeconds ?? d.progressTimeoutSeconds,
      allowAutoConverge: own.allowAutoConverge ?? pol.allowAutoConverge ?? d.allowAutoConverge,
      allowPostCopy: own.allowPostCopy ?? pol.allowPostCopy ?? d.allowPostCopy,
      insecureMigration: own.insecureMigration ?? pol.insecureMigration ?? d.insecureMigration ?? false,
      maxAttempts: own.maxAttempts ?? pol.maxAttempts ?? d.maxAttempts,
    },
  };
}

/** What the move's machine is started with (the mode is intake's business). */
export function machinePolicy(e: EffectivePolicy): ResolvedPolicy {
  return {
    maxDowntimeMs: e.maxDowntimeMs,
    bandwidthMiBps: e.bandwidthMiBps,
    completionTimeoutPerGiB: e.completionTimeoutPerGiB,
    progressTimeoutSeconds: e.progressTimeoutSeconds,
    allowAutoConverge: e.allowAutoConverge,
    allowPostCopy: e.allowPostCopy,
    maxAttempts: e.maxAttempts,
    insecureMigration: e.insecureMigration,
  };
}
