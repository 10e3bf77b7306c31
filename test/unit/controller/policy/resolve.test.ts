// Which policy a move uses: precedence field by field, which MovePolicy matches, and the tie-break.
import type { MovePolicy, MovePolicySpec, MoveRequest } from '../../../../src/api/types';
import { DEFAULT_POLICY } from '../../../../src/controller/config';
import { machinePolicy, matchingPolicy, policyMatch, resolveEffectivePolicy, type PolicyDefaults } from '../../../../src/controller/policy/resolve';

const policy = (name: string, spec: MovePolicySpec, deleting = false): MovePolicy => ({
  apiVersion: 'vmove.dev/v1alpha1',
  kind: 'MovePolicy',
  metadata: { name, ...(deleting ? { deletionTimestamp: '2030-01-01T00:00:00Z' } : {}) },
  spec,
});
const request = (spec: Partial<MoveRequest['spec']> = {}): Pick<MoveRequest, 'spec'> => ({ spec: { vmName: 'web', ...spec } });
const flags: PolicyDefaults = { mode: 'Auto', policy: { ...DEFAULT_POLICY, maxDowntimeMs: 500 } };
const ns = { 'kubernetes.io/metadata.name': 'prod', env: 'prod' };

describe('precedence, field by field', () => {
  test('the MoveRequest field > the MovePolicy > the controller flag > the built-in default', () => {
    const p = policy('slow', { maxDowntimeMs: 800, bandwidthMiBps: 64, mode: 'Cold' });
    const r = resolveEffectivePolicy(request({ policy: { bandwidthMiBps: 32 } }), { policies: [p], vmLabels: {}, namespaceLabels: ns, defaults: flags });
    expect(r.policyRef).toBe('slow');
    expect(r.effective).toEqual({
      mode: 'Cold', // the policy's: the request sets none
      maxDowntimeMs: 800, // the policy's, over the flag's 500
      bandwidthMiBps: 32, // the request's own, over the policy's 64
      completionTimeoutPerGiB: DEFAULT_POLICY.completionTimeoutPerGiB, // built-in
      progressTimeoutSeconds: DEFAULT_POLICY.progressTimeoutSeconds,
      allowAutoConverge: true,
      allowPostCopy: false,
      insecureMigration: false,
      maxAttempts: DEFAULT_POLICY.maxAttempts,
    });
  });

  test('no policy matches: the flags, and policyRef says none', () => {
    const r = resolveEffectivePolicy(request(), { policies: [policy('db-only', { selectors: { vmSelector: { matchLabels: { app: 'db' } } }, maxDowntimeMs: 50 })], vmLabels: { app: 'web' }, defaults: flags });
    expect(r.policyRef).toBe('');
    expect(r.effective.maxDowntimeMs).toBe(500);
    expect(r.effective.mode).toBe('Auto');
  });

  test('the request\'s own mode and a false boolean win over the policy', () => {
    const p = policy('p', { mode: 'Cold', allowAutoConverge: true, allowPostCopy: true });
    const r = resolveEffectivePolicy(request({ mode: 'Live', policy: { allowAutoConverge: false } }), { policies: [p], defaults: flags });
    expect(r.effective).toMatchObject({ mode: 'Live', allowAutoConverge: false, allowPostCopy: true });
  });

  test('the machine gets every knob but the mode', () => {
    const r = resolveEffectivePolicy(request({ policy: { insecureMigration: true } }), { policies: [], defaults: flags });
    expect(machinePolicy(r.effective)).toEqual({ ...flags.policy, insecureMigration: true });
  });
});

describe('matching', () => {
  test('namespaceSelector and vmSelector must both match; each names its labels', () => {
    const p = policy('p', { selectors: { namespaceSelector: { matchLabels: { env: 'prod' } }, vmSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['db', 'cache'] }] } }, maxDowntimeMs: 10 });
    expect(policyMatch(p, { tier: 'db' }, ns)).toBe(2);
    expect(policyMatch(p, { tier: 'web' }, ns)).toBeUndefined();
    expect(policyMatch(p, { tier: 'db' }, { env: 'dev' })).toBeUndefined();
    expect(policyMatch(p, { tier: 'db' }, undefined)).toBeUndefined();
  });

  test('a policy without selectors matches every VM with weight 0: a cluster default any specific policy beats', () => {
    const all = policy('aaa-everything', { maxDowntimeMs: 1 });
    const dbs = policy('zzz-dbs', { selectors: { vmSelector: { matchLabels: { app: 'db' } } }, maxDowntimeMs: 2 });
    expect(matchingPolicy([all, dbs], { app: 'db' }, ns)?.metadata.name).toBe('zzz-dbs');
    expect(matchingPolicy([all, dbs], { app: 'web' }, ns)?.metadata.name).toBe('aaa-everything');
  });

  test('the policy matching the most labels wins, across both selectors', () => {
    const one = policy('one', { selectors: { vmSelector: { matchLabels: { app: 'db' } } }, maxDowntimeMs: 1 });
    const two = policy('two', { selectors: { namespaceSelector: { matchLabels: { env: 'prod' } }, vmSelector: { matchExpressions: [{ key: 'app', operator: 'Exists' }] } }, maxDowntimeMs: 2 });
    const three = policy('three', { selectors: { vmSelector: { matchLabels: { app: 'db', tier: 'gold', zone: 'x' } } }, maxDowntimeMs: 3 });
    expect(matchingPolicy([one, two, three], { app: 'db' }, ns)?.metadata.name).toBe('two');
    expect(matchingPolicy([one, two, three], { app: 'db', tier: 'gold', zone: 'x' }, ns)?.metadata.name).toBe('three');
  });

  test('a tie goes to the name first in alphabetical order, whatever the list order', () => {
    const b = policy('beta', { selectors: { vmSelector: { matchLabels: { app: 'db' } } }, maxDowntimeMs: 2 });
    const a = policy('alpha', { selectors: { namespaceSelector: { matchLabels: { env: 'prod' } } }, maxDowntimeMs: 1 });
    expect(matchingPolicy([b, a], { app: 'db' }, ns)?.metadata.name).toBe('alpha');
    expect(matchingPolicy([a, b], { app: 'db' }, ns)?.metadata.name).toBe('alpha');
    expect(resolveEffectivePolicy(request(), { policies: [b, a], vmLabels: { app: 'db' }, namespaceLabels: ns, defaults: flags }).effective.maxDowntimeMs).toBe(1);
  });

  test('NotIn and DoesNotExist match VMs without the label; a policy being deleted is passed over', () => {
    const p = policy('no-gpu', { selectors: { vmSelector: { matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }, { key: 'tier', operator: 'NotIn', values: ['db'] }] } }, maxDowntimeMs: 9 });
    expect(policyMatch(p, {}, ns)).toBe(2);
    expect(policyMatch(p, { gpu: 'a100' }, ns)).toBeUndefined();
    expect(policyMatch(p, { tier: 'db' }, ns)).toBeUndefined();
    expect(matchingPolicy([policy('gone', { maxDowntimeMs: 1 }, true)], {}, ns)).toBeUndefined();
  });
});
