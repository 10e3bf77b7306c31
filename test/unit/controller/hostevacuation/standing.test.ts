import { judgeEnd, standingOf } from '../../../../src/controller/hostevacuation/standing';
import { classifyHost } from '../../../../src/controller/hostevacuation/hostState';
import { matchesSelector, parseLabels } from '../../../../src/controller/hostevacuation/vms';
import { CANCELLED_BY_ANNOTATION } from '../../../../src/controller/hostevacuation/names';
import { host, ownedMove, vm } from './fixtures';

const failed = (attempt: number, context: Record<string, unknown>, o: { target?: string; message?: string } = {}) =>
  ownedMove('web', attempt, { phase: 'Failed', target: o.target ?? 'b', message: o.message ?? 'rolled back', context: { attempt: 1, policy: { maxAttempts: 3 }, targetNode: o.target ?? 'b', unreachable: {}, ...context } });

describe('judgeEnd: does a failed move deserve another attempt?', () => {
  test('the engine retried a transient failure until it ran out of attempts: transient', () => {
    expect(judgeEnd(failed(1, { attempt: 3, failure: 'PreparingTarget: sim: injected transient failure' }))).toEqual({ kind: 'Transient', reason: 'failed 3 times on b: PreparingTarget: sim: injected transient failure' });
  });
  test('a first-attempt failure the engine did not retry (permanent error, timeout) would fail again', () => {
    expect(judgeEnd(failed(1, { failure: 'Migrating: did not converge on the last rung' }))).toEqual({ kind: 'Permanent', reason: 'Migrating: did not converge on the last rung' });
  });
  test('no room on the target, or the target host lost: transient', () => {
    expect(judgeEnd(failed(1, { targetNode: undefined, failure: 'no host can take the VM' })).kind).toBe('Transient');
    expect(judgeEnd(failed(1, { unreachable: { target: true }, failure: 'target host lost' })).kind).toBe('Transient');
  });
  test('the source host lost: superseded (the dead-host path recovers the VM, no retry used)', () => {
    expect(judgeEnd(failed(1, { unreachable: { source: true }, failure: 'source host lost during Migrating' })).kind).toBe('Superseded');
  });
  test('refused before it started (no machine): permanent, with the reason', () => {
    expect(judgeEnd(ownedMove('web', 1, { phase: 'Failed', message: 'storage: Shared, but the VM has Local disks' }))).toEqual({ kind: 'Permanent', reason: 'storage: Shared, but the VM has Local disks' });
  });
  test('cancelled by the evacuation itself: superseded; by someone else: the VM is left alone', () => {
    expect(judgeEnd(ownedMove('web', 1, { phase: 'Cancelled', annotations: { [CANCELLED_BY_ANNOTATION]: 'a died' } })).kind).toBe('Superseded');
    expect(judgeEnd(ownedMove('web', 1, { phase: 'Cancelled' }))).toEqual({ kind: 'Permanent', reason: 'its MoveRequest drain-a-web-1 was cancelled' });
  });
});

describe('standingOf', () => {
  test('a VM still on the node without a move is to be moved, attempt 1', () => {
    expect(standingOf(vm('web'), [], 'a', 2)).toEqual({ kind: 'ToMove', attempt: 1, avoid: [] });
  });
  test('a VM whose move runs is moving; started once past Pending', () => {
    expect(standingOf(vm('web'), [ownedMove('web', 1, { phase: 'Pending', target: 'b' })], 'a', 2)).toMatchObject({ kind: 'Moving', started: false });
    expect(standingOf(vm('web'), [ownedMove('web', 1, { phase: 'Migrating', target: 'b' })], 'a', 2)).toMatchObject({ kind: 'Moving', started: true });
    expect(standingOf(vm('web'), [ownedMove('web', 1)], 'a', 2)).toMatchObject({ kind: 'Moving', started: false });
  });
  test('off the node is done — also a stopped VM that still reports its old node after a move that succeeded', () => {
    expect(standingOf(vm('web', { node: 'b' }), [ownedMove('web', 1, { phase: 'Succeeded', target: 'b' })], 'a', 2)).toMatchObject({ kind: 'Done' });
    expect(standingOf(vm('web', { running: false }), [ownedMove('web', 1, { phase: 'Succeeded', target: 'b' })], 'a', 2)).toMatchObject({ kind: 'Done' });
    expect(standingOf(undefined, [ownedMove('web', 1, { phase: 'Succeeded', target: 'b' })], 'a', 2)).toMatchObject({ kind: 'Done' });
    expect(standingOf(undefined, [ownedMove('web', 1, { phase: 'Failed', target: 'b' })], 'a', 2)).toBeUndefined();
  });
  test('transient failures are retried up to maxRetries, each avoiding the hosts that failed; then given up', () => {
    const f1 = failed(1, { attempt: 3, failure: 'x' }, { target: 'b' });
    const f2 = failed(2, { attempt: 3, failure: 'y' }, { target: 'c' });
    expect(standingOf(vm('web'), [f1], 'a', 2)).toMatchObject({ kind: 'ToMove', attempt: 2, avoid: ['b'], retry: 'failed 3 times on b: x' });
    expect(standingOf(vm('web'), [f2, f1], 'a', 2)).toMatchObject({ kind: 'ToMove', attempt: 3, avoid: ['b', 'c'] });
    expect(standingOf(vm('web'), [f1, f2], 'a', 1)).toEqual({ kind: 'GaveUp', latest: f2, reason: '2 attempts failed (maxRetries 1); last: failed 3 times on c: y' });
  });
  test('a permanent failure is given up at once; a superseded move costs no retry', () => {
    expect(standingOf(vm('web'), [failed(1, { failure: 'nope' })], 'a', 5)).toMatchObject({ kind: 'GaveUp', reason: 'nope' });
    const lost = failed(1, { unreachable: { source: true }, failure: 'source lost' });
    expect(standingOf(vm('web'), [lost], 'a', 0)).toMatchObject({ kind: 'ToMove', attempt: 2, avoid: [] });
  });
});

describe('classifyHost', () => {
  test('alive while its agent renews the lease', () => {
    expect(classifyHost(host('a'), 40, 'a')).toEqual({ state: 'Alive' });
  });
  test('dead only when the lease expired past the grace period and the Node is not Ready', () => {
    const expired = (s: number, ready?: boolean) => ({ ...host('a', { alive: false, ready }), agent: { ...host('a').agent!, alive: false, expiredForSeconds: s } });
    expect(classifyHost(expired(10, false), 40, 'a')).toMatchObject({ state: 'Unreachable' });
    expect(classifyHost(expired(60, true), 40, 'a')).toMatchObject({ state: 'Unreachable', why: 'the agent of a stopped renewing its Lease 60 s ago, but its Node still reports Ready' });
    expect(classifyHost(expired(60, false), 40, 'a')).toEqual({ state: 'Dead', fenced: false, why: 'the agent of a stopped renewing its Lease 60 s ago and its Node is not Ready' });
    expect(classifyHost({ ...expired(60, undefined), fenced: true }, 40, 'a')).toMatchObject({ state: 'Dead', fenced: true });
  });
});

describe('vmSelector', () => {
  test('matchLabels and every expression operator', () => {
    const labels = { app: 'web', tier: 'front' };
    expect(matchesSelector(labels, undefined)).toBe(true);
    expect(matchesSelector(labels, { matchLabels: { app: 'web' } })).toBe(true);
    expect(matchesSelector(labels, { matchLabels: { app: 'db' } })).toBe(false);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] })).toBe(true);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] })).toBe(false);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] })).toBe(true);
    expect(matchesSelector(labels, { matchExpressions: [{ key: 'gpu', operator: 'Exists' }] })).toBe(false);
    expect(matchesSelector(undefined, { matchExpressions: [{ key: 'gpu', operator: 'NotIn', values: ['x'] }] })).toBe(true);
  });
  test('the CLI selector syntax', () => {
    expect(parseLabels('app=web, zone=east')).toEqual({ app: 'web', zone: 'east' });
    expect(() => parseLabels('app')).toThrow('"app" is not a label pair key=value');
  });
});
