// vmove's test guest kit (hack/build-guest.sh): a Debian kernel and a busybox initramfs that
// prints a heartbeat on its serial console, cached in ~/.cache/vmove/images/testguest. The
// qemu and libvirt drivers boot it as the image `testguest`.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { repoPath } from '../cluster/repo';

export const GUEST_IMAGE = 'testguest';

/**
 * The images folder holding the guest kit (builds the kit first when missing or stale; quick
 * when it is up to date). This is what `vmove agent --images-dir` wants for real drivers.
 */
export function guestKitImagesDir(): string {
  const imageDir = execFileSync(repoPath('hack', 'build-guest.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  if (path.basename(imageDir) !== GUEST_IMAGE) throw new Error(`hack/build-guest.sh printed ${JSON.stringify(imageDir)}, not a ${GUEST_IMAGE} folder`);
  return path.dirname(imageDir);
}
