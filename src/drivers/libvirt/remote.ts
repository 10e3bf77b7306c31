// The libvirt remote-protocol procedures vmove uses, as typed calls. Procedure numbers and
// argument layouts follow libvirt's src/remote/remote_protocol.x (append-only, so stable
// across libvirt versions); flags and enums follow include/libvirt/libvirt-domain.h.
import { LibvirtRpc } from './rpc';
import type { XdrReader, XdrWriter } from './xdr';

const Proc = {
  ConnectOpen: 1,
  ConnectClose: 2,
  DomainCreate: 9,
  DomainGetXmlDesc: 14,
  DomainGetInfo: 16,
  DomainLookupByName: 23,
  DomainIsActive: 150,
  DomainResume: 28,
  DomainShutdown: 33,
  ConnectGetLibVersion: 157,
  DomainAttachDeviceFlags: 160,
  DomainDetachDeviceFlags: 161,
  DomainAbortJob: 164,
  DomainMigrateSetMaxDowntime: 166,
  DomainSetVcpusFlags: 199,
  DomainMigrateSetMaxSpeed: 207,
  DomainGetState: 212,
  DomainUndefineFlags: 231,
  DomainDestroyFlags: 234,
  ConnectListAllDomains: 273,
  DomainGetJobStats: 298,
  DomainMigratePerform3Params: 305,
  DomainDefineXmlFlags: 350,
  DomainMigrateStartPostCopy: 364,
} as const;

/** virDomainState */
export const DomainState = {
  NoState: 0,
  Running: 1,
  Blocked: 2,
  Paused: 3,
  Shutdown: 4,
  Shutoff: 5,
  Crashed: 6,
  PmSuspended: 7,
} as const;

/** virDomainPausedReason values vmove reacts to. */
export const PausedReason = { Migration: 2, StartingUp: 11, Postcopy: 12, PostcopyFailed: 13 } as const;
/** virDomainShutoffReason values vmove reacts to. */
export const ShutoffReason = { Crashed: 3, Migrated: 4, Failed: 6 } as const;
/** virDomainRunningReason values vmove reacts to. */
export const RunningReason = { Migrated: 2, MigrationCanceled: 6, Postcopy: 10 } as const;

/** virDomainMigrateFlags */
export const MigrateFlag = {
  Live: 1 << 0,
  PeerToPeer: 1 << 1,
  PersistDest: 1 << 3,
  UndefineSource: 1 << 4,
  NonSharedDisk: 1 << 6,
  Unsafe: 1 << 9,
  AbortOnError: 1 << 12,
  AutoConverge: 1 << 13,
  Postcopy: 1 << 15,
  Tls: 1 << 16,
  Parallel: 1 << 17,
} as const;

/** virDomainJobType */
export const JobType = { None: 0, Bounded: 1, Unbounded: 2, Completed: 3, Failed: 4, Cancelled: 5 } as const;
/** virDomainGetJobStatsFlags */
export const JobStatsFlag = { Completed: 1 << 0, KeepCompleted: 1 << 1 } as const;
/** virDomainModificationImpact */
export const Affect = { Live: 1 << 0, Config: 1 << 1 } as const;
/** virDomainXMLFlags */
export const XmlFlag = { Inactive: 1 << 1, Migratable: 1 << 3 } as const;
/** virDomainUndefineFlagsValues: also drop managed-save images, snapshot and checkpoint metadata and NVRAM. */
export const UNDEFINE_EVERYTHING = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 4);
/** virDomainDefineFlags: validate the XML against libvirt's schema. */
export const DEFINE_VALIDATE = 1 << 0;
/** The largest bandwidth (MiB/s) libvirt accepts: it means "unlimited". */
export const UNLIMITED_BANDWIDTH_MIBPS = 8796093022207n;

/** virTypedParameterType */
const ParamType = { Int: 1, UInt: 2, LLong: 3, ULLong: 4, Double: 5, Boolean: 6, String: 7 } as const;

export type TypedParam =
  | { field: string; type: 'int' | 'uint'; value: number }
  | { field: string; type: 'ullong'; value: number | bigint }
  | { field: string; type: 'string'; value: string };

export type TypedValue = number | boolean | string;

/** A domain handle as the protocol passes it; lookups return fresh ones. */
export interface DomainRef {
  name: string;
  uuid: Buffer;
  id: number;
}

export interface DomainInfo {
  state: number;
  maxMemKiB: number;
  memoryKiB: number;
  vcpus: number;
}

export interface JobStats {
  type: number;
  params: Map<string, TypedValue>;
}

const writeDomain = (w: XdrWriter, d: DomainRef): void => {
  w.string(d.name).fixedOpaque(d.uuid).int(d.id);
};

const readDomain = (r: XdrReader): DomainRef => ({ name: r.string(), uuid: r.fixedOpaque(16), id: r.int() });

function writeParam(w: XdrWriter, p: TypedParam): void {
  w.string(p.field);
  switch (p.type) {
    case 'int':
      w.int(ParamType.Int).int(p.value);
      break;
    case 'uint':
      w.int(ParamType.UInt).uint(p.value);
      break;
    case 'ullong':
      w.int(ParamType.ULLong).uhyper(p.value);
      break;
    case 'string':
      w.int(ParamType.String).string(p.value);
      break;
  }
}

function readParam(r: XdrReader): [string, TypedValue] {
  const field = r.string();
  const type = r.int();
  switch (type) {
    case ParamType.Int:
      return [field, r.int()];
    case ParamType.UInt:
      return [field, r.uint()];
    case ParamType.LLong:
      return [field, Number(r.hyper())];
    case ParamType.ULLong:
      return [field, Number(r.uhyper())];
    case ParamType.Double:
      return [field, r.double()];
    case ParamType.Boolean:
      return [field, r.int() !== 0];
    case ParamType.String:
      return [field, r.string()];
    default:
      throw new Error(`unknown typed parameter type ${type} for ${field}`);
  }
}

/** One open connection to a hypervisor driver of libvirtd (`qemu:///system`). */
export class LibvirtConnection {
  private constructor(private readonly rpc: LibvirtRpc) {}

  static async open(socketPath: string, uri = 'qemu:///system'): Promise<LibvirtConnection> {
    const rpc = await LibvirtRpc.connect(socketPath);
    try {
      await rpc.call(Proc.ConnectOpen, (w) => w.optString(uri).uint(0));
    } catch (err) {
      rpc.close();
      throw err;
    }
    return new LibvirtConnection(rpc);
  }

  get closed(): boolean {
    return this.rpc.closed;
  }

  async close(): Promise<void> {
    if (this.rpc.closed) return;
    try {
      await this.rpc.call(Proc.ConnectClose);
    } catch {
      // The daemon may already be gone; closing the socket is all that is left to do.
    }
    this.rpc.close();
  }

  async libVersion(): Promise<number> {
    return Number((await this.rpc.call(Proc.ConnectGetLibVersion)).uhyper());
  }

  /** Every domain, running or only defined. */
  async listAllDomains(): Promise<DomainRef[]> {
    const r = await this.rpc.call(Proc.ConnectListAllDomains, (w) => w.int(1).uint(0));
    return r.array(readDomain);
  }

  async lookupByName(name: string): Promise<DomainRef> {
    return readDomain(await this.rpc.call(Proc.DomainLookupByName, (w) => w.string(name)));
  }

  async defineXml(xml: string, flags = 0): Promise<DomainRef> {
    return readDomain(await this.rpc.call(Proc.DomainDefineXmlFlags, (w) => w.string(xml).uint(flags)));
  }

  async undefine(d: DomainRef, flags: number): Promise<void> {
    await this.rpc.call(Proc.DomainUndefineFlags, (w) => (writeDomain(w, d), w.uint(flags)));
  }

  async create(d: DomainRef): Promise<void> {
    await this.rpc.call(Proc.DomainCreate, (w) => writeDomain(w, d));
  }

  async destroy(d: DomainRef, flags = 0): Promise<void> {
    await this.rpc.call(Proc.DomainDestroyFlags, (w) => (writeDomain(w, d), w.uint(flags)));
  }

  async shutdown(d: DomainRef): Promise<void> {
    await this.rpc.call(Proc.DomainShutdown, (w) => writeDomain(w, d));
  }

  async resume(d: DomainRef): Promise<void> {
    await this.rpc.call(Proc.DomainResume, (w) => writeDomain(w, d));
  }

  async getXmlDesc(d: DomainRef, flags = 0): Promise<string> {
    return (await this.rpc.call(Proc.DomainGetXmlDesc, (w) => (writeDomain(w, d), w.uint(flags)))).string();
  }

  async isActive(d: DomainRef): Promise<boolean> {
    return (await this.rpc.call(Proc.DomainIsActive, (w) => writeDomain(w, d))).int() !== 0;
  }

  async getState(d: DomainRef): Promise<{ state: number; reason: number }> {
    const r = await this.rpc.call(Proc.DomainGetState, (w) => (writeDomain(w, d), w.uint(0)));
    return { state: r.int(), reason: r.int() };
  }

  async getInfo(d: DomainRef): Promise<DomainInfo> {
    const r = await this.rpc.call(Proc.DomainGetInfo, (w) => writeDomain(w, d));
    // XDR has no byte: `unsigned char state` and `unsigned short nrVirtCpu` travel as 4-byte words.
    const state = r.uint();
    const maxMemKiB = Number(r.uhyper());
    const memoryKiB = Number(r.uhyper());
    const vcpus = r.uint();
    r.uhyper(); // cpu time
    return { state, maxMemKiB, memoryKiB, vcpus };
  }

  async setVcpus(d: DomainRef, count: number, flags: number): Promise<void> {
    await this.rpc.call(Proc.DomainSetVcpusFlags, (w) => (writeDomain(w, d), w.uint(count).uint(flags)));
  }

  async attachDevice(d: DomainRef, xml: string, flags: number): Promise<void> {
    await this.rpc.call(Proc.DomainAttachDeviceFlags, (w) => (writeDomain(w, d), w.string(xml).uint(flags)));
  }

  async detachDevice(d: DomainRef, xml: string, flags: number): Promise<void> {
    await this.rpc.call(Proc.DomainDetachDeviceFlags, (w) => (writeDomain(w, d), w.string(xml).uint(flags)));
  }

  async getJobStats(d: DomainRef, flags = 0): Promise<JobStats> {
    const r = await this.rpc.call(Proc.DomainGetJobStats, (w) => (writeDomain(w, d), w.uint(flags)));
    const type = r.int();
    return { type, params: new Map(r.array(readParam)) };
  }

  async abortJob(d: DomainRef): Promise<void> {
    await this.rpc.call(Proc.DomainAbortJob, (w) => writeDomain(w, d));
  }

  async migrateSetMaxSpeed(d: DomainRef, mibps: number | bigint): Promise<void> {
    await this.rpc.call(Proc.DomainMigrateSetMaxSpeed, (w) => (writeDomain(w, d), w.uhyper(mibps).uint(0)));
  }

  async migrateSetMaxDowntime(d: DomainRef, ms: number): Promise<void> {
    await this.rpc.call(Proc.DomainMigrateSetMaxDowntime, (w) => (writeDomain(w, d), w.uhyper(ms).uint(0)));
  }

  async migrateStartPostCopy(d: DomainRef): Promise<void> {
    await this.rpc.call(Proc.DomainMigrateStartPostCopy, (w) => (writeDomain(w, d), w.uint(0)));
  }

  /**
   * Peer-to-peer migration: the source daemon connects to `destUri` itself and drives the
   * whole protocol; the call returns when the migration has finished (or failed).
   */
  async migratePerformP2P(d: DomainRef, destUri: string, params: TypedParam[], flags: number): Promise<void> {
    await this.rpc.call(Proc.DomainMigratePerform3Params, (w) => {
      writeDomain(w, d);
      w.optString(destUri);
      w.array(params, writeParam);
      w.varOpaque(Buffer.alloc(0)); // cookie: only the client-driven (non-p2p) protocol uses it
      w.uint(flags);
    });
  }
}
