import type { MoveRequestSpec, VirtualMachine } from '../../../src/api/types';
import { chooseMove, type ChoiceFacts } from '../../../src/controller/chooseMove';
import type { HostFacts } from '../../../src/controller/clusterView';
import { placeVm } from '../../../src/controller/placement';
import { GiB, host, MiB } from './hostFacts';

function vm(o: { local?: boolean; running?: boolean; cpu?: number; memory?: string } = {}): VirtualMachine {
  return {
    apiVersion: 'vmove.dev/v1alpha1',
    kind: 'VirtualMachine',
    metadata: { name: 'web', namespace: 'default', uid: 'u1' },
    spec: { image: 'testguest', cpu: o.cpu ?? 1, memory: o.memory ?? '256Mi', running: o.running ?? true, disks: [{ name: 'root', size: '1Gi', storage: o.local ? 'Local' : 'SharedFile' }] },
    status: { nodeName: 'a', phase: 'Running', cpu: o.cpu ?? 1, memory: o.memory ?? '256Mi' },
  };
}

function facts(v: VirtualMachine, hosts: HostFacts[] = [host('a'), host('b')]): ChoiceFacts {
  return { vm: v, sourceNode: 'a', source: hosts.find((h) => h.node === 'a'), probe: (needs, q) => placeVm(hosts, { needs, exclude: ['a'], inboundLimit: 2, ...q }) };
}

const choose = (spec: Partial<MoveRequestSpec>, f: ChoiceFacts) => chooseMove({ vmName: 'web', ...spec }, f);

describe('chooseMove', () => {
  test('Auto moves a running VM live, over shared storage or by block migration', () => {
    const shared = choose({}, facts(vm()));
    expect(shared).toMatchObject({ ok: true, choice: { moveType: 'Live', variant: 'SharedStorage' } });
    const local = choose({}, facts(vm({ local: true })));
    expect(local).toMatchObject({ ok: true, choice: { moveType: 'Live', variant: 'BlockMigration' } });
  });

  test('Auto moves cold when no host can receive it live, and says why', () => {
    const r = choose({}, facts(vm(), [host('a'), host('b', { caps: { liveMigration: false } })]));
    expect(r).toMatchObject({ ok: true, choice: { moveType: 'Cold', variant: 'SharedStorage' } });
    expect(r.ok && r.choice.reason).toContain('no host can receive it live');
    expect(r.ok && r.choice.reason).toContain('b: cannot receive a live migration');
  });

  test('Auto moves a stopped VM cold, copying its local disks', () => {
    expect(choose({}, facts(vm({ running: false, local: true })))).toMatchObject({ ok: true, choice: { moveType: 'Cold', variant: 'DiskCopy' } });
  });

  test('resources without a target resize in place when the host has room (hotplug when growing a running VM)', () => {
    const grow = choose({ resources: { cpu: 2, memory: '512Mi' } }, facts(vm()));
    expect(grow).toMatchObject({ ok: true, choice: { moveType: 'ResizeInPlace', variant: 'Hotplug', before: { cpu: 1, memoryBytes: 256 * MiB }, after: { cpu: 2, memoryBytes: 512 * MiB } } });
    const shrink = choose({ resources: { memory: '128Mi' } }, facts(vm()));
    expect(shrink).toMatchObject({ ok: true, choice: { moveType: 'ResizeInPlace', variant: 'Restart' } });
    const noHotplug = choose({ resources: { cpu: 2 } }, facts(vm(), [host('a', { caps: { hotplug: false } }), host('b')]));
    expect(noHotplug).toMatchObject({ ok: true, choice: { moveType: 'ResizeInPlace', variant: 'Restart' } });
  });

  test('resources without room on the current host become a cold move', () => {
    const full = host('a', { caps: { memoryBytes: GiB }, used: { cpu: 1, memoryBytes: GiB } });
    const r = choose({ resources: { memory: '512Mi' } }, facts(vm(), [full, host('b')]));
    expect(r).toMatchObject({ ok: true, choice: { moveType: 'Cold' } });
    expect(r.ok && r.choice.reason).toContain('a has no room to grow in place');
  });

  test('Rebuild: from shared disk, or from the image when disks were local', () => {
    expect(choose({ mode: 'Rebuild' }, facts(vm()))).toMatchObject({ ok: true, choice: { moveType: 'Rebuild', variant: 'FromSharedDisk' } });
    const img = choose({ mode: 'Rebuild' }, facts(vm({ local: true })));
    expect(img).toMatchObject({ ok: true, choice: { moveType: 'Rebuild', variant: 'FromImage' } });
    expect(img.ok && img.choice.reason).toContain('data is lost');
  });

  test('impossible requests fail with a sentence that says why', () => {
    expect(choose({ mode: 'Live', resources: { cpu: 2 }, target: { nodeName: 'b' } }, facts(vm()))).toEqual({ ok: false, reason: 'a live move cannot change resources: use mode Cold or Auto' });
    expect(choose({ mode: 'Live' }, facts(vm({ running: false })))).toEqual({ ok: false, reason: 'the VM is stopped: a live move needs a running VM (use mode Cold or Auto)' });
    expect(choose({ target: { nodeName: 'a' } }, facts(vm()))).toEqual({ ok: false, reason: "target.nodeName is the VM's current node (a) and nothing would change" });
    expect(choose({ resources: { cpu: 1 } }, facts(vm()))).toEqual({ ok: false, reason: 'spec.resources equal what the VM already has: nothing would change' });
    expect(choose({ mode: 'Cold', storage: 'Shared' }, facts(vm({ local: true })))).toMatchObject({ ok: false });
  });
});
