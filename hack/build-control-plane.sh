#!/usr/bin/env bash
# Builds kube-apiserver and etcd from their Go modules (no prebuilt binaries can be
# downloaded on these machines) and caches them by version outside the checkout, so a
# second run — or CI's fresh clone on the same machine — reuses them.
#
# Prints the directory holding both binaries. Honours KUBEBUILDER_ASSETS when it already
# holds kube-apiserver and etcd.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

KUBE_VERSION="${VMOVE_KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${VMOVE_ETCD_VERSION:-v3.6.16}"
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
OUT="$CACHE/bin/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"

log() { echo "[control-plane] $*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if [[ -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
    echo "$KUBEBUILDER_ASSETS"; exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; building instead"
fi

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" ]]; then
  echo "$OUT"; exit 0
fi

# Go's official tarball installs here without touching PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi

if ! command -v go >/dev/null 2>&1; then
  log "error: neither KUBEBUILDER_ASSETS (with kube-apiserver and etcd) nor a Go toolchain is available."
  log "Install Go (https://go.dev/dl) or point KUBEBUILDER_ASSETS at a folder holding both binaries."
  exit 1
fi

mkdir -p "$OUT"
# One build at a time (e.g. `make test` and `make run` started together on a fresh machine);
# whoever waited finds the binaries built.
exec 9>"$OUT/.build.lock"
flock 9
if [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" ]]; then
  echo "$OUT"; exit 0
fi
work="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

"$HERE/build-kube-components.sh" "$KUBE_VERSION" "$OUT" kube-apiserver

if [[ ! -x "$OUT/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  {
    echo "module vmove.dev/build/etcd"
    echo "go 1.24.0"
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
      echo "replace go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"
    done
  } > go.mod
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$OUT/etcd.tmp" "$OUT/etcd"
fi

echo "$OUT"
