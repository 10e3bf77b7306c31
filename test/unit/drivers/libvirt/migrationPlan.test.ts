import type { MigrationTuning } from '../../../../src/protocol/migration';
import {
  armedFeatures,
  migrationFlags,
  migrationParams,
  toMigrationStatus,
  vmStateOf,
  type LibvirtIncoming,
} from '../../../../src/drivers/libvirt/migrationPlan';
import { DomainState, JobType, MigrateFlag, PausedReason, ShutoffReason, type JobStats } from '../../../../src/drivers/libvirt/remote';

const tuning = (over: Partial<MigrationTuning> = {}): MigrationTuning => ({ bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false, ...over });
const to: LibvirtIncoming = {
  peerUri: 'qemu+unix:///system?socket=/h2/run/libvirt/libvirt-sock',
  listenAddress: '127.0.0.1',
  disks: { root: '/h2/local/ns_vm/root.qcow2' },
  serialLog: '/h2/state/libvirt/vms/ns_vm/serial.log',
};

describe('what a migration arms', () => {
  test('post-copy is armed whenever allowed, so a later rung can switch to it without restarting', () => {
    expect(armedFeatures(tuning(), true, false)).toEqual({ autoConverge: false, postCopy: true, parallelConnections: 0 });
    expect(armedFeatures(tuning({ allowPostCopy: false }), true, false).postCopy).toBe(false);
    // The target cannot (no userfaultfd), disks are mirrored, or multifd is on: no post-copy.
    expect(armedFeatures(tuning(), false, false).postCopy).toBe(false);
    expect(armedFeatures(tuning(), true, true).postCopy).toBe(false);
    expect(armedFeatures(tuning({ multifdChannels: 4 }), true, false)).toEqual({ autoConverge: false, postCopy: false, parallelConnections: 4 });
  });

  test('auto-converge is armed only when asked: libvirt cannot cap its throttle', () => {
    expect(armedFeatures(tuning({ allowAutoConverge: true }), true, false).autoConverge).toBe(false);
    expect(armedFeatures(tuning({ autoConverge: true }), true, false).autoConverge).toBe(true);
  });

  test('flags: always live and peer-to-peer, persistent on the target; disks and safety by storage', () => {
    const base = MigrateFlag.Live | MigrateFlag.PeerToPeer | MigrateFlag.PersistDest | MigrateFlag.AbortOnError;
    const none = { autoConverge: false, postCopy: false, parallelConnections: 0 };
    expect(migrationFlags(none, { blockMigration: false, sharedDisks: true, tls: false })).toBe(base | MigrateFlag.Unsafe);
    expect(migrationFlags(none, { blockMigration: true, sharedDisks: false, tls: false })).toBe(base | MigrateFlag.NonSharedDisk);
    // TLS (VIR_MIGRATE_TLS = 1 << 16) when the target's endpoint says its daemon has migration certificates.
    expect(migrationFlags(none, { blockMigration: true, sharedDisks: false, tls: true })).toBe(base | MigrateFlag.NonSharedDisk | 65536);
    expect(migrationFlags({ autoConverge: true, postCopy: true, parallelConnections: 2 }, { blockMigration: false, sharedDisks: false, tls: false })).toBe(
      base | MigrateFlag.AutoConverge | MigrateFlag.Postcopy | MigrateFlag.Parallel,
    );
  });

  test('parameters: the target address, both XMLs, a bandwidth only when capped, the disks to copy', () => {
    const params = migrationParams({ to, destXml: '<domain/>', persistXml: '<domain/>', tuning: tuning({ bandwidthMiBps: 100 }), armed: armedFeatures(tuning(), false, true), copyDisks: ['vda'] });
    expect(params).toEqual([
      { field: 'migrate_uri', type: 'string', value: 'tcp://127.0.0.1' },
      { field: 'listen_address', type: 'string', value: '127.0.0.1' },
      { field: 'destination_xml', type: 'string', value: '<domain/>' },
      { field: 'persistent_xml', type: 'string', value: '<domain/>' },
      { field: 'bandwidth', type: 'ullong', value: 100 },
      { field: 'migrate_disks', type: 'string', value: 'vda' },
    ]);
    const v6 = migrationParams({ to: { ...to, listenAddress: '::1' }, destXml: '', persistXml: '', tuning: tuning(), armed: armedFeatures(tuning(), false, false), copyDisks: [] });
    expect(v6[0]).toEqual({ field: 'migrate_uri', type: 'string', value: 'tcp://[::1]' });
    expect(v6.some((p) => p.field === 'bandwidth')).toBe(false);
  });

  test('parameters: auto-converge throttles in the step the tuning names, else in libvirt’s', () => {
    const on = tuning({ autoConverge: true, autoConvergeStepPercent: 70 });
    const params = migrationParams({ to, destXml: '', persistXml: '', tuning: on, armed: armedFeatures(on, false, false), copyDisks: [] });
    expect(params).toEqual(expect.arrayContaining([
      { field: 'auto_converge.initial', type: 'int', value: 70 },
      { field: 'auto_converge.increment', type: 'int', value: 70 },
    ]));
    const plain = tuning({ autoConverge: true });
    expect(migrationParams({ to, destXml: '', persistXml: '', tuning: plain, armed: armedFeatures(plain, false, false), copyDisks: [] }).some((p) => p.field.startsWith('auto_converge'))).toBe(false);
  });
});

const stats = (type: number, params: Record<string, number | string>): JobStats => ({ type, params: new Map(Object.entries(params)) });

describe('job statistics as MigrationStatus', () => {
  test('an active migration reports progress, with the dirty rate in bytes', () => {
    const s = toMigrationStatus(
      stats(JobType.Unbounded, {
        operation: 5,
        time_elapsed: 2976,
        memory_total: 268967936,
        memory_processed: 157339648,
        memory_remaining: 46895104,
        memory_dirty_rate: 13767,
        memory_page_size: 4096,
        memory_iteration: 2,
        disk_total: 67174400,
        disk_processed: 67174400,
        disk_remaining: 0,
      }),
      { postCopy: false },
    );
    expect(s).toEqual({
      state: 'active',
      memoryTotalBytes: 268967936,
      memoryTransferredBytes: 157339648,
      memoryRemainingBytes: 46895104,
      diskTotalBytes: 67174400,
      diskTransferredBytes: 67174400,
      diskRemainingBytes: 0,
      dirtyRateBytesPerSecond: 13767 * 4096,
      iteration: 2,
      totalTimeMs: 2976,
    });
  });

  test('before RAM moves it is setup; the source paused in post-copy is postcopy', () => {
    expect(toMigrationStatus(stats(JobType.Unbounded, { operation: 5, disk_total: 1 }), { postCopy: false }).state).toBe('setup');
    expect(toMigrationStatus(stats(JobType.Unbounded, { memory_total: 1 }), { postCopy: true }).state).toBe('postcopy');
  });

  test('completed, failed and cancelled jobs end the migration; only failures carry the error', () => {
    expect(toMigrationStatus(stats(JobType.Completed, { downtime: 132, time_elapsed: 635, memory_total: 1 }), { postCopy: false })).toMatchObject({
      state: 'completed',
      downtimeMs: 132,
      totalTimeMs: 635,
    });
    expect(toMigrationStatus(stats(JobType.Failed, { errmsg: 'connection reset' }), { postCopy: false })).toMatchObject({ state: 'failed', error: 'connection reset' });
    expect(toMigrationStatus(stats(JobType.Cancelled, {}), { postCopy: false }).state).toBe('cancelled');
  });
});

describe('domain state as VmState', () => {
  test.each([
    [DomainState.Running, 1, 'Running'],
    [DomainState.Paused, PausedReason.Migration, 'Incoming'],
    [DomainState.Paused, PausedReason.Postcopy, 'Migrated'],
    [DomainState.Paused, 1, 'Paused'],
    [DomainState.Shutoff, ShutoffReason.Migrated, 'Migrated'],
    [DomainState.Shutoff, 1, 'Stopped'],
    [DomainState.Shutoff, ShutoffReason.Crashed, 'Crashed'],
    [DomainState.Crashed, 0, 'Crashed'],
  ])('state %i reason %i is %s', (state, reason, expected) => {
    expect(vmStateOf(state, reason)).toBe(expected);
  });
});
