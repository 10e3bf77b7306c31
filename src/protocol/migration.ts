// A live migration as the controller, the agent and the drivers speak of it: where the target
// waits (IncomingEndpoint), the knobs the convergence ladder turns (MigrationTuning), and how far
// it got (MigrationStatus).

/** Where an incoming migration should be sent; returned by prepareIncoming. */
export interface IncomingEndpoint {
  /** e.g. tcp:127.0.0.1:49152 */
  migrationUri: string;
  /** NBD export of the target's empty disks, for block migration. */
  nbd?: { host: string; port: number; exports: Record<string, string> };
  tls?: boolean;
  /**
   * With `tls`: the name the target's certificate carries (its node name). The source checks the
   * stream's peer against it, not against the address, so the stream may go over any network of
   * the target (a dedicated migration network) without that address in the certificate.
   */
  tlsName?: string;
  /** Post-copy is armed on the target (the source arms it too, so a later switch is possible). */
  postCopy?: boolean;
  /** Multifd channels the target expects (the source must use the same number). */
  multifdChannels?: number;
  /**
   * libvirt targets: the URI the source's libvirtd connects to (peer-to-peer), the address the
   * target listens on, and the target's path of each disk (by name) and of the serial log, so
   * the source can send libvirt the target's XML.
   */
  libvirt?: { peerUri: string; listenAddress: string; disks: Record<string, string>; serialLog: string };
}

/** Auto-converge's step when a tuning names none: 20 % at first, 20 % more at each step (every driver). */
export const DEFAULT_AUTO_CONVERGE_STEP_PERCENT = 20;

/** Knobs the convergence ladder turns. */
export interface MigrationTuning {
  /** 0 = unlimited. */
  bandwidthMiBps: number;
  maxDowntimeMs: number;
  autoConverge: boolean;
  /** Switch to post-copy now (only when the policy allows it). */
  postCopy: boolean;
  multifdChannels?: number;
  /**
   * With autoConverge: how much the guest is throttled at first and how much more at each step
   * (absent: 20 %). The controller chooses it from what it measured of the link and the dirty set.
   */
  autoConvergeStepPercent?: number;
  /**
   * Whether a later tuning may turn on auto-converge / post-copy. Hypervisors fix these
   * capabilities when a migration starts, so drivers arm them up front; absent = allowed.
   */
  allowAutoConverge?: boolean;
  allowPostCopy?: boolean;
}

export type MigrationState =
  | 'none'
  | 'setup'
  | 'active'
  | 'postcopy'
  | 'completed'
  | 'failed'
  | 'cancelled';

export interface MigrationStatus {
  state: MigrationState;
  memoryTotalBytes: number;
  memoryTransferredBytes: number;
  memoryRemainingBytes: number;
  diskTotalBytes: number;
  diskTransferredBytes: number;
  diskRemainingBytes: number;
  dirtyRateBytesPerSecond: number;
  /** Dirty-sync passes so far. */
  iteration: number;
  downtimeMs?: number;
  totalTimeMs?: number;
  error?: string;
  /** With `error`: true when trying the migration again may succeed (peer died, link broke). */
  errorTransient?: boolean;
  /** The hypervisor's own word on whether the stream uses TLS credentials (QEMU's tls-creds); absent when it cannot say. */
  tls?: boolean;
}
