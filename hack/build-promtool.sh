#!/usr/bin/env bash
# Builds promtool from the Prometheus Go module (no prebuilt binaries can be downloaded on these
# machines) and caches it by version outside the checkout, like hack/build-helm.sh does for Helm.
# The alert rules' tests run `promtool test rules`, which evaluates them with Prometheus's own
# rule engine. Prints the path of the promtool binary.
#
# A promtool already on PATH is used instead when it is Prometheus 3 (the rule files use no
# feature newer than 3.0).
set -euo pipefail

# Prometheus 3.x is published as Go module versions v0.3xx.y (3.16.0 = v0.316.0).
PROM_VERSION="${VMOVE_PROMETHEUS_VERSION:-v0.316.0}"
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
OUT="$CACHE/bin/promtool-$PROM_VERSION"

log() { echo "[promtool] $*" >&2; }

if [[ -z "${VMOVE_PROMETHEUS_VERSION:-}" ]] && on_path="$(command -v promtool 2>/dev/null)"; then
  if promtool --version 2>&1 | grep -q '^promtool, version 3\.'; then
    echo "$on_path"; exit 0
  fi
  log "promtool on PATH is not Prometheus 3: using vmove's own $PROM_VERSION"
fi

if [[ -x "$OUT/promtool" ]]; then
  echo "$OUT/promtool"; exit 0
fi

# Go's official tarball installs here without touching PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  log "error: no promtool (Prometheus 3) on PATH and no Go toolchain to build one."
  log "Install Prometheus (https://prometheus.io/download/) or Go (https://go.dev/dl)."
  exit 1
fi

mkdir -p "$OUT"
# One build at a time; whoever waited finds the binary built.
exec 9>"$OUT/.build.lock"
flock 9
if [[ -x "$OUT/promtool" ]]; then
  echo "$OUT/promtool"; exit 0
fi

# "v0.316.0" -> "3.16.0", the version promtool --version reports in Prometheus's own builds.
minor="${PROM_VERSION#v0.3}"; minor="${minor%%.*}"; patch="${PROM_VERSION##*.}"
release="3.$((10#$minor)).$patch"
log "building promtool $release ($PROM_VERSION of github.com/prometheus/prometheus; a few minutes the first time)"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false"
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=release"
GOBIN="$OUT/.tmp" go install -trimpath -ldflags "$ldflags" "github.com/prometheus/prometheus/cmd/promtool@$PROM_VERSION" >&2
mv "$OUT/.tmp/promtool" "$OUT/promtool"
rmdir "$OUT/.tmp"

echo "$OUT/promtool"
