#!/usr/bin/env bash
# Builds Helm from its Go module (no prebuilt binaries can be downloaded on these machines)
# and caches it by version outside the checkout, like hack/build-control-plane.sh does for
# kube-apiserver and etcd. Prints the path of the helm binary.
#
# A helm already on PATH is used instead when it is Helm 3 at or above VMOVE_HELM_MIN_MINOR:
# Helm supports the Kubernetes minor it was built against and the three before it, and 3.19
# is the first built against 1.34, the API server the tests run.
set -euo pipefail

HELM_VERSION="${VMOVE_HELM_VERSION:-v3.20.2}"
MIN_MINOR="${VMOVE_HELM_MIN_MINOR:-19}"
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
OUT="$CACHE/bin/helm-$HELM_VERSION"

log() { echo "[helm] $*" >&2; }

# "v3.20.2+g1234" -> fits when the major is 3 and the minor is at least MIN_MINOR.
fits() {
  [[ "$1" =~ ^v3\.([0-9]+)\. ]] && (( BASH_REMATCH[1] >= MIN_MINOR ))
}

if [[ -z "${VMOVE_HELM_VERSION:-}" ]] && on_path="$(command -v helm 2>/dev/null)"; then
  have="$(helm version --template '{{.Version}}' 2>/dev/null || true)"
  if fits "$have"; then
    echo "$on_path"; exit 0
  fi
  log "helm on PATH is ${have:-of unknown version} (need Helm 3, v3.$MIN_MINOR or later): using vmove's own $HELM_VERSION"
fi

if [[ -x "$OUT/helm" ]]; then
  echo "$OUT/helm"; exit 0
fi

# Go's official tarball installs here without touching PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  log "error: no helm (v3.$MIN_MINOR+) on PATH and no Go toolchain to build one."
  log "Install Helm (https://helm.sh/docs/intro/install/) or Go (https://go.dev/dl)."
  exit 1
fi

mkdir -p "$OUT"
# One build at a time; whoever waited finds the binary built.
exec 9>"$OUT/.build.lock"
flock 9
if [[ -x "$OUT/helm" ]]; then
  echo "$OUT/helm"; exit 0
fi

log "building helm $HELM_VERSION from helm.sh/helm/v3 (takes a few minutes the first time)"
export CGO_ENABLED=0
# Helm's own release build stamps its version and the Kubernetes version it was built
# against (the default of .Capabilities.KubeVersion in `helm template` and `helm lint`);
# `go install` alone would leave both at their placeholders.
gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
client_go="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod" | head -n1)"
if [[ -z "$client_go" ]]; then
  log "error: cannot read the k8s.io/client-go version from $gomod"
  exit 1
fi
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_go"
done
GOBIN="$OUT/.tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
mv "$OUT/.tmp/helm" "$OUT/helm"
rmdir "$OUT/.tmp"

echo "$OUT/helm"
