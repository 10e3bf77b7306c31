// The DriverErrors the drivers throw most: one that trying again will not mend (unknown VM, wrong
// state) and one that it may (a guest slow to let go, a target not reachable yet).
import { DriverError } from '../driver';

export const permanent = (message: string, cause?: unknown): DriverError => new DriverError(message, false, cause === undefined ? undefined : { cause });
export const transient = (message: string, cause?: unknown): DriverError => new DriverError(message, true, cause === undefined ? undefined : { cause });
