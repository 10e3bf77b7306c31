#!/usr/bin/env bash
# Builds one of vmove's small Go test tools, hack/<NAME> (its own Go module), and caches the
# binary outside the checkout keyed by its sources, like hack/build-control-plane.sh caches
# kube-apiserver: a second run, or CI's fresh clone on the same machine, reuses it.
#   hack/build-go-tool.sh kstatus   what sigs.k8s.io/cli-utils' kstatus says of objects
#   hack/build-go-tool.sh promql    parses PromQL expressions, names the metrics they read
#   hack/build-go-tool.sh grafana   checks dashboards against Grafana's own schema
# Prints the path of the binary.
set -euo pipefail

name="${1:?usage: hack/build-go-tool.sh NAME (a folder of hack/ holding a Go module)}"
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/$name"
[[ -f "$src/go.mod" ]] || { echo "[$name] error: $src/go.mod does not exist" >&2; exit 1; }
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
# go.mod pins the libraries' versions; a change to any source builds a new binary.
stamp="$(cat "$src"/*.go "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-12)"
OUT="$CACHE/bin/$name-$stamp"

log() { echo "[$name] $*" >&2; }

if [[ -x "$OUT/$name" ]]; then
  echo "$OUT/$name"; exit 0
fi

# Go's official tarball installs here without touching PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  log "error: no Go toolchain to build hack/$name (install Go: https://go.dev/dl)."
  exit 1
fi

mkdir -p "$OUT"
# One build at a time; whoever waited finds the binary built.
exec 9>"$OUT/.build.lock"
flock 9
if [[ -x "$OUT/$name" ]]; then
  echo "$OUT/$name"; exit 0
fi

log "building hack/$name"
(cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$OUT/$name.tmp" .) >&2
mv "$OUT/$name.tmp" "$OUT/$name"

echo "$OUT/$name"
