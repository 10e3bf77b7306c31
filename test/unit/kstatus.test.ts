// MoveRequest and HostEvacuation as Flux and kstatus-based tools see them: the real kstatus
// library (sigs.k8s.io/cli-utils/pkg/kstatus/status, run by hack/kstatus) on objects of every
// outcome. The fixtures in test/unit/kstatus/ are real objects of sim moves and evacuations whose
// conditions are written as issue 13's convention asks — Reconciling=True while in progress,
// Stalled=True with the reason once it cannot get anywhere (Failed, Cancelled, a dead host nobody
// fences), Ready=True on success, observedGeneration current — so a wait ends promptly on
// failure instead of timing out. (With the Ready/Progressing/Failed conditions alone, kstatus
// calls a Failed move InProgress for ever: Ready=False cannot tell doomed from busy.)
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, TOOL_BUILD_TIMEOUT_MS, goToolPath } from '../support/hackTools';
import { kstatusOf, kstatusOfFiles, type KstatusVerdict } from '../support/kstatus';

const FIXTURES = join(REPO, 'test', 'unit', 'kstatus');

const expected: Record<string, Pick<KstatusVerdict, 'status' | 'message'>> = {
  'moverequest-pending': { status: 'InProgress', message: 'VirtualMachine big is being moved by MoveRequest big-move; this request starts when that one ends' },
  'moverequest-migrating': { status: 'InProgress', message: 'Migrating: 15% sent, node-a → node-b' },
  'moverequest-rolling-back': { status: 'InProgress', message: 'rolling back: Migrating: migration failed: migration stream to tcp:127.0.0.1:20160 broke: read ECONNRESET' },
  'moverequest-cancel-not-observed': { status: 'InProgress', message: 'MoveRequest generation is 2, but latest observed generation is 1' },
  'moverequest-succeeded': { status: 'Current', message: 'Resource is Ready' },
  'moverequest-failed': { status: 'Failed', message: 'no host can take the VM: no host fits — node-c: not enough memory: needs 4Gi, 1Gi free of 1Gi' },
  'moverequest-failed-unknown-vm': { status: 'Failed', message: 'VirtualMachine ghost does not exist in namespace default' },
  'moverequest-failed-rolled-back': { status: 'Failed', message: 'Migrating: migration failed: migration stream to tcp:127.0.0.1:20160 broke: read ECONNRESET' },
  'moverequest-cancelled': { status: 'Failed', message: 'cancelled; the VM is where it was' },
  'moverequest-deleting': { status: 'Terminating', message: 'Resource scheduled for deletion' },
  'hostevacuation-evacuating': { status: 'InProgress', message: '0 of 2 VMs moved off node-a; 1 moving, 1 waiting' },
  'hostevacuation-succeeded': { status: 'Current', message: 'Resource is Ready' },
  'hostevacuation-dry-run': { status: 'Current', message: 'Resource is Ready' },
  'hostevacuation-failed': {
    status: 'Failed',
    message:
      '2 of 2 VMs could not be moved off node-b — default/idle: cannot be moved: the VM is stopped: a live move needs a running VM (use mode Cold or Auto); default/wide: no host fits — node-a: does not match nodeSelector kubernetes.io/hostname=node-c; node-c: not enough memory: needs 2Gi, 1Gi free of 1Gi; node-d: does not match nodeSelector kubernetes.io/hostname=node-c',
  },
  'hostevacuation-cancelled': { status: 'Failed', message: 'cancelled: 0 VMs had been moved off node-d; the others stay where they are; node-d is uncordoned' },
  'hostevacuation-waiting-for-fence': {
    status: 'Failed',
    message:
      'the agent of node-a stopped renewing its Lease 5 s ago and its Node is not Ready. vmove does not start its 2 VMs elsewhere while they might still run there: once node-a is powered off, mark it with `kubectl taint nodes node-a node.kubernetes.io/out-of-service=nodeshutdown:NoExecute`',
  },
};

beforeAll(() => {
  goToolPath('kstatus');
}, TOOL_BUILD_TIMEOUT_MS);

test('every fixture has an expected verdict', () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, ''));
  expect(files.sort()).toEqual(Object.keys(expected).sort());
});

test.each(Object.entries(expected))('%s', (name, want) => {
  const [got] = kstatusOfFiles([join(FIXTURES, `${name}.yaml`)]);
  expect({ status: got?.status, message: got?.message }).toEqual(want);
});

test('the helper reads objects given in memory too, several at once', () => {
  const move = (phase: string, ready: 'True' | 'False') => ({
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'MoveRequest',
    metadata: { name: phase.toLowerCase(), namespace: 'default', generation: 1 },
    status: { phase, observedGeneration: 1, conditions: [{ type: 'Ready', status: ready, reason: phase, message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
  });
  expect(kstatusOf([move('Succeeded', 'True'), move('Migrating', 'False')]).map((v) => [v.name, v.status])).toEqual([
    ['succeeded', 'Current'],
    ['migrating', 'InProgress'],
  ]);
});
