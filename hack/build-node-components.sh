#!/usr/bin/env bash
# Builds what real kubelet nodes need beside kube-apiserver and etcd — kubelet,
# kube-controller-manager, kube-scheduler and kube-proxy — from the same k8s.io/kubernetes
# release, cached by version outside the checkout. Prints the directory holding them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBE_VERSION="${VMOVE_KUBE_VERSION:-v1.34.4}"
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
OUT="$CACHE/bin/kube-$KUBE_VERSION-node"
COMPONENTS=(kubelet kube-controller-manager kube-scheduler kube-proxy)

all_there() { for c in "${COMPONENTS[@]}"; do [[ -x "$OUT/$c" ]] || return 1; done; }
if all_there; then echo "$OUT"; exit 0; fi
mkdir -p "$OUT"
exec 9>"$OUT/.build.lock"
flock 9
"$HERE/build-kube-components.sh" "$KUBE_VERSION" "$OUT" "${COMPONENTS[@]}"
echo "$OUT"
