// The transfer rate of a move as the watcher sees it: bytes the move processed between two status
// updates over the time between them. Status holds the dirty rate but not the link's rate, and
// the step's own watch (in the persisted machine) keeps only the peak; this is what goes now.
// Pure: the watch loop hands in each status with the time it arrived.
import type { MoveRequest } from '../api/types';

export interface RateSample {
  /** What the sample is of: the same phase of the same attempt (a new step starts from zero). */
  step: string;
  atMs: number;
  processedBytes: number;
  /** Smoothed bytes/s; undefined until two samples of one step were seen. */
  bytesPerSecond?: number;
}

/** Weight of the newest window in the smoothed rate (status arrives every ~2 s). */
const SMOOTHING = 0.6;
/** No new bytes for this long: the rate is zero (progress is written every ~2 s while it moves). */
const IDLE_AFTER_MS = 6_000;

export const processedOf = (mr: MoveRequest): number => (mr.status?.progress?.memoryProcessedBytes ?? 0) + (mr.status?.progress?.diskProcessedBytes ?? 0);

export function nextRateSample(prev: RateSample | undefined, mr: MoveRequest, atMs: number): RateSample {
  const step = `${mr.status?.attempt ?? 1}/${mr.status?.phase ?? 'Pending'}`;
  const processedBytes = processedOf(mr);
  if (!prev || prev.step !== step || processedBytes < prev.processedBytes) return { step, atMs, processedBytes };
  const spanMs = atMs - prev.atMs;
  // The same bytes again (another field of the status changed): keep the figure a while, then
  // say the link is idle. Two updates close together measure nothing: wait for the next one.
  if (processedBytes === prev.processedBytes) return spanMs < IDLE_AFTER_MS ? prev : { step, atMs, processedBytes, bytesPerSecond: 0 };
  if (spanMs < 200) return prev;
  const now = ((processedBytes - prev.processedBytes) * 1000) / spanMs;
  const bytesPerSecond = prev.bytesPerSecond === undefined ? now : SMOOTHING * now + (1 - SMOOTHING) * prev.bytesPerSecond;
  return { step, atMs, processedBytes, bytesPerSecond };
}
