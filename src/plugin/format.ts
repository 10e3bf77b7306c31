// Numbers as a person reads them in a terminal: bytes in binary units, rates, durations. Pure.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB"; one decimal below 100 of a unit, none above. */
export function bytes(n: number): string {
  let v = Math.max(0, n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)} B`;
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${UNITS[u]}`;
}

export const rate = (bytesPerSecond: number): string => `${bytes(bytesPerSecond)}/s`;

/** Seconds as "45s", "3m05s", "2h01m". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The time from an instant to another: "14ms", "4.2s", "3m05s". */
export function span(fromIso: string, toMs: number): string {
  const ms = Math.max(0, toMs - Date.parse(fromIso));
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : duration(ms / 1000);
}

/** A bar of `width` cells for a percentage: "[#####.....]". ASCII, so every terminal shows it. */
export function bar(percent: number | undefined, width = 20): string {
  const p = Math.min(100, Math.max(0, percent ?? 0));
  const full = Math.round((p * width) / 100);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** Cut a line to the terminal's width (a character for the ellipsis). */
export const fit = (line: string, width: number): string => (width > 1 && line.length > width ? `${line.slice(0, width - 1)}…` : line);
