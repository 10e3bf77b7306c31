#!/usr/bin/env bash
# Builds vmove's test guest kit from Debian packages and caches it outside the checkout:
#   $VMOVE_CACHE/images/testguest/{vmlinuz,initrd.img,disk.qcow2,cmdline}
# vmlinuz is Debian's kernel (extracted with dpkg -x, never installed into /boot); initrd.img
# is a busybox-static initramfs whose /init (hack/guest/init) dirties memory, keeps a disk
# counter and prints a heartbeat; disk.qcow2 is a small blank base image VM disks overlay.
# Installs its tools with apt-get when missing. Idempotent: quick when the kit is up to date.
# Prints the image folder (the parent of it is a driver's imagesDir).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
OUT="$CACHE/images/testguest"
DEBS="$CACHE/debs"
log() { echo "[guest] $*" >&2; }

apt_updated=0
apt_update_once() { [[ $apt_updated == 1 ]] || { log "apt-get update"; apt-get update -qq >&2; apt_updated=1; }; }
sudo_if_needed() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v qemu-img >/dev/null || need_pkgs+=(qemu-utils)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" \
  || need_pkgs+=(busybox-static)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v gcc >/dev/null || need_pkgs+=(gcc)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || need_pkgs+=(libc6-dev)
command -v openssl >/dev/null || need_pkgs+=(openssl)
if (( ${#need_pkgs[@]} )); then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2 \
    || { apt_update_once; sudo_if_needed apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2; }
fi

# The kernel package linux-image-amd64 points at today; an already cached one is kept when
# the package lists are unavailable.
kernel_pkg="${VMOVE_GUEST_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}"
if [[ -z "$kernel_pkg" ]]; then
  kernel_pkg="$(cat "$OUT/kernel-package" 2>/dev/null || true)"
  if [[ -z "$kernel_pkg" ]]; then
    apt_update_once
    kernel_pkg="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  fi
fi
[[ -n "$kernel_pkg" ]] || { log "error: cannot resolve the Debian kernel package"; exit 1; }

# Everything the kit is made of; a change rebuilds it.
stamp="$(cat "$here/guest/init" "$here/guest/vmove-guest.c" "$0" | sha256sum | cut -c1-16)-$kernel_pkg"
if [[ -f "$OUT/stamp" && "$(cat "$OUT/stamp")" == "$stamp" && -f "$OUT/vmlinuz" && -f "$OUT/initrd.img" && -f "$OUT/disk.qcow2" ]]; then
  echo "$OUT"; exit 0
fi

mkdir -p "$OUT" "$DEBS"
work="$(mktemp -d "$CACHE/guest-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

deb="$(ls "$DEBS/${kernel_pkg}_"*.deb 2>/dev/null | head -1 || true)"
if [[ -z "$deb" ]]; then
  log "downloading $kernel_pkg"
  (cd "$work" && { apt-get download "$kernel_pkg" >&2 2>/dev/null || { apt_update_once; apt-get download "$kernel_pkg" >&2; }; })
  mv "$work"/"${kernel_pkg}"_*.deb "$DEBS/"
  deb="$(ls "$DEBS/${kernel_pkg}_"*.deb | head -1)"
fi
log "extracting $(basename "$deb")"
dpkg -x "$deb" "$work/kernel"
kver="$(basename "$(ls -d "$work"/kernel/lib/modules/*/ | head -1)")"

log "building initramfs for $kver"
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules/"$kver"}
cp /bin/busybox "$root/bin/busybox"
gcc -O2 -static -Wall -Wextra -o "$root/bin/vmove-guest" "$here/guest/vmove-guest.c"
cp "$here/guest/init" "$root/init"
chmod 0755 "$root/init"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk button evdev; do
  f="$(find "$work/kernel/lib/modules/$kver" -name "$m.ko" | head -1)"
  [[ -n "$f" ]] || { log "error: module $m missing from $kernel_pkg"; exit 1; }
  cp "$f" "$root/lib/modules/$kver/"
done
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -9) > "$work/initrd.img"

cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
qemu-img create -q -f qcow2 "$work/disk.qcow2" 64M
# Default kernel command line of the image; the driver appends each VM's kernelArgs.
# nohz=off highres=off: a periodic tick instead of one-shot LAPIC timer events. With the tickless
# default, QEMU 7.2 under TCG crashed the guest in its timer code (hrtimer_interrupt →
# clockevents_program_min_delta, or list corruption) right after about one live migration in
# four on a loaded 2-core machine; with a periodic tick, none in 46.
# pti=on: the guest still crashed after about one live migration in eight when two ran at once
# (timer lists and per-CPU data corrupt: writes the source's dirty tracking missed). TCG tracks
# writes through its TLB, and a writable entry it keeps for a page whose dirty bit was cleared
# lets writes go unseen; the qemu64 CPU is "AMD", so Linux leaves PTI off and its kernel pages stay
# in that TLB. With PTI, every entry into and exit from the kernel reloads CR3, which empties TCG's
# TLB: none in 50 (measured with both on the same machine, 2 migrations at a time).
echo "console=ttyS0 quiet memhp_default_state=online_movable nohz=off highres=off pti=on" > "$work/cmdline"
for f in vmlinuz initrd.img disk.qcow2 cmdline; do mv -f "$work/$f" "$OUT/$f"; done
echo "$kernel_pkg" > "$OUT/kernel-package"
echo "$stamp" > "$OUT/stamp"
log "built $OUT"
echo "$OUT"
