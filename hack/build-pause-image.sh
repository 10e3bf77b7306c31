#!/usr/bin/env bash
# The pod sandbox image kubelet nodes need (registry.k8s.io/pause cannot be pulled here): the
# static program hack/node/pause.c in an otherwise empty image, as an OCI archive
#   $VMOVE_CACHE/images/pause-<hash>.oci.tar, image localhost/vmove-pause:<hash>
# Prints the archive path and the image reference, one a line. Same storage as build-image.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
hash="$(cat "$here/node/pause.c" "$here/build-pause-image.sh" | sha256sum | cut -c1-12)"
out="$CACHE/images/pause-$hash.oci.tar" ref="localhost/vmove-pause:$hash"
if [[ ! -f "$out" ]]; then
  mkdir -p "$CACHE/images"
  exec 9>"$CACHE/images/.vmove-image.lock"
  flock 9
  if [[ ! -f "$out" ]]; then
    command -v buildah >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y -qq buildah >&2
    bh() { buildah --root "$CACHE/containers/storage" --runroot "$CACHE/containers/run" --storage-driver vfs "$@"; }
    work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
    gcc -static -O2 -o "$work/pause" "$here/node/pause.c"
    c="$(bh from scratch)"
    bh copy "$c" "$work/pause" /pause >&2
    bh config --entrypoint '["/pause"]' "$c" >&2
    bh commit -q "$c" "$ref" >&2
    bh rm "$c" >&2
    bh push -q "$ref" "oci-archive:$out.tmp:$ref" >&2
    mv "$out.tmp" "$out"
  fi
fi
echo "$out"
echo "$ref"
