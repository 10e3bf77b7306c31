import type { MigrationState, MigrationStatus } from '../../protocol/migration';

/** A migration status with nothing transferred (none yet, or its statistics are gone). */
export const emptyMigrationStatus = (state: MigrationState, error?: string): MigrationStatus => ({
  state,
  memoryTotalBytes: 0,
  memoryTransferredBytes: 0,
  memoryRemainingBytes: 0,
  diskTotalBytes: 0,
  diskTransferredBytes: 0,
  diskRemainingBytes: 0,
  dirtyRateBytesPerSecond: 0,
  iteration: 0,
  ...(error ? { error } : {}),
});
