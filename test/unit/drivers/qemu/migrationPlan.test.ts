import { UNLIMITED_BANDWIDTH, capabilityList, diskProgress, migrationParameters, toMigrationStatus } from '../../../../src/drivers/qemu/migrationPlan';

const MiB = 1024 * 1024;
const armed = { postCopy: true, autoConverge: true, multifdChannels: 0 };

test('bandwidth 0 means unlimited; downtime is passed in ms', () => {
  const p = migrationParameters({ bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false }, armed);
  expect(p).toMatchObject({ 'max-bandwidth': UNLIMITED_BANDWIDTH, 'downtime-limit': 300 });
  expect(migrationParameters({ bandwidthMiBps: 100, maxDowntimeMs: 50, autoConverge: false, postCopy: false }, armed)['max-bandwidth']).toBe(100 * MiB);
});

test('armed auto-converge throttles at most 1 % until the tuning asks for it', () => {
  const off = migrationParameters({ bandwidthMiBps: 100, maxDowntimeMs: 300, autoConverge: false, postCopy: false }, armed);
  expect(off).toMatchObject({ 'max-cpu-throttle': 1 });
  const on = migrationParameters({ bandwidthMiBps: 100, maxDowntimeMs: 300, autoConverge: true, postCopy: false }, armed);
  expect(on).toMatchObject({ 'cpu-throttle-initial': 20, 'cpu-throttle-increment': 20, 'max-cpu-throttle': 99 });
  // The step the controller chose from what it measured: the first throttle and each step after it.
  const measured = migrationParameters({ bandwidthMiBps: 100, maxDowntimeMs: 300, autoConverge: true, postCopy: false, autoConvergeStepPercent: 70 }, armed);
  expect(measured).toMatchObject({ 'cpu-throttle-initial': 70, 'cpu-throttle-increment': 70, 'max-cpu-throttle': 99 });
  expect(migrationParameters({ bandwidthMiBps: 1, maxDowntimeMs: 1, autoConverge: false, postCopy: false }, { ...armed, autoConverge: false })).not.toHaveProperty('max-cpu-throttle');
});

test('capabilities name what is armed, and multifd carries its channel count', () => {
  const caps = capabilityList({ postCopy: false, autoConverge: false, multifdChannels: 4 });
  expect(caps).toContainEqual({ capability: 'multifd', state: true });
  expect(caps).toContainEqual({ capability: 'postcopy-ram', state: false });
  expect(migrationParameters({ bandwidthMiBps: 0, maxDowntimeMs: 300, autoConverge: false, postCopy: false }, { postCopy: false, autoConverge: false, multifdChannels: 4 })['multifd-channels']).toBe(4);
});

test('query-migrate and mirror jobs become MigrationStatus', () => {
  const disk = diskProgress([
    { device: 'mirror0', type: 'mirror', len: 100, offset: 40, ready: false, status: 'running' },
    { device: 'other', type: 'stream', len: 999, offset: 0, ready: false, status: 'running' },
  ]);
  const s = toMigrationStatus(
    { status: 'active', ram: { total: 300, transferred: 120, remaining: 180, 'dirty-pages-rate': 10, 'page-size': 4096, 'dirty-sync-count': 3 }, 'total-time': 900 },
    disk,
  );
  expect(s).toEqual({
    state: 'active',
    memoryTotalBytes: 300,
    memoryTransferredBytes: 120,
    memoryRemainingBytes: 180,
    diskTotalBytes: 100,
    diskTransferredBytes: 40,
    diskRemainingBytes: 60,
    dirtyRateBytesPerSecond: 40960,
    iteration: 3,
    totalTimeMs: 900,
  });
  expect(toMigrationStatus({ status: 'postcopy-active' }, disk).state).toBe('postcopy');
  expect(toMigrationStatus({ status: 'failed', 'error-desc': 'Connection refused' }, disk)).toMatchObject({ state: 'failed', error: 'Connection refused', errorTransient: true });
  expect(toMigrationStatus({ status: 'completed', ram: { remaining: 5 }, downtime: 42 }, disk)).toMatchObject({ state: 'completed', memoryRemainingBytes: 0, downtimeMs: 42 });
});
