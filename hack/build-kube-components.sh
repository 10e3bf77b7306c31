#!/usr/bin/env bash
# Builds Kubernetes components (kube-apiserver, kubelet, kube-controller-manager, …) from the
# k8s.io/kubernetes Go module into OUT: no prebuilt binaries can be downloaded on these machines.
# `go install` of k8s.io/kubernetes refuses (its go.mod replaces the staging modules with local
# paths), so a small wrapper module points each staging module at its published release.
#
# Usage: build-kube-components.sh VERSION OUT COMPONENT...   (skips components OUT already holds)
set -euo pipefail
version="$1" out="$2"; shift 2
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
log() { echo "[kube-components] $*" >&2; }

missing=()
for c in "$@"; do [[ -x "$out/$c" ]] || missing+=("$c"); done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null 2>&1 || { log "error: no Go toolchain to build ${missing[*]}"; exit 1; }

mkdir -p "$out" "$CACHE"
work="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
cd "$work"
staging_version="v0.${version#v1.}"
{
  echo "module vmove.dev/build/kube"
  echo "go 1.24.0"
  echo "require k8s.io/kubernetes $version"
  for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go \
    cloud-provider cluster-bootstrap code-generator component-base component-helpers \
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation \
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy \
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission \
    sample-apiserver sample-cli-plugin sample-controller; do
    echo "replace k8s.io/$m => k8s.io/$m $staging_version"
  done
} > go.mod
minor="${version#v1.}"; minor="${minor%%.*}"
for c in "${missing[@]}"; do
  log "building $c $version (several minutes the first time)"
  go get "k8s.io/kubernetes/cmd/$c@$version" >&2
  go build -trimpath -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=$version \
    -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$minor" \
    -o "$out/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2
  mv "$out/$c.tmp" "$out/$c"
done
