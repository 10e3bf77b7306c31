// Knobs of the simulated host. Rates are per simulated second; `timeScale` simulated seconds
// pass per real second, so tests can run a 10-minute migration in a second, deterministically.
import { DEFAULT_GUEST, type GuestDefaults } from './guest';

export interface SimDriverOptions {
  /** Migration link bandwidth, MiB/s; Infinity = instant transfers. */
  bandwidthMiBps: number;
  /** Disk copy rate (readDisk), MiB/s; Infinity = instant. */
  diskMiBps: number;
  /** Simulated seconds per real second. */
  timeScale: number;
  /** Guest behaviour when the VM's annotations do not say. */
  guest: GuestDefaults;
  /** Hotplug limits; default: the host's capacity. */
  maxCpu?: number;
  maxMemoryBytes?: number;
  /** Real milliseconds between two steps of a running migration (progress frames, model). */
  tickMs: number;
  /** The clock (real milliseconds); tests may inject one. */
  now: () => number;
  /** Simulated seconds an injected guest hang (`fail-transient-at: verify`) lasts after each boot. */
  hangSeconds: number;
}

export const DEFAULT_SIM_OPTIONS: SimDriverOptions = {
  // ~10 GbE.
  bandwidthMiBps: 1100,
  diskMiBps: 400,
  timeScale: 1,
  guest: DEFAULT_GUEST,
  tickMs: 50,
  now: () => Date.now(),
  hangSeconds: 30,
};

export function simOptions(partial: Partial<SimDriverOptions> = {}): SimDriverOptions {
  const o = { ...DEFAULT_SIM_OPTIONS, ...partial, guest: { ...DEFAULT_GUEST, ...partial.guest } };
  if (!(o.timeScale > 0)) throw new Error(`sim: timeScale must be > 0 (got ${o.timeScale})`);
  if (!(o.bandwidthMiBps > 0)) throw new Error(`sim: bandwidthMiBps must be > 0 (got ${o.bandwidthMiBps})`);
  if (!(o.diskMiBps > 0)) throw new Error(`sim: diskMiBps must be > 0 (got ${o.diskMiBps})`);
  return o;
}
