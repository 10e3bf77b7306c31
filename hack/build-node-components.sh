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

# What the nodes run that Debian ships: containerd (with ctr), runc, the CNI plugins, and
# conntrack and iptables for kube-proxy. Installed when missing, as the other hack/ scripts do.
node_packages() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  command -v conntrack >/dev/null || need+=(conntrack)
  command -v iptables >/dev/null || need+=(iptables)
  [[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
  [[ ${#need[@]} -eq 0 ]] && return 0
  echo "[node-components] installing ${need[*]} from Debian" >&2
  local apt=(apt-get -o DPkg::Lock::Timeout=600)
  [[ $(id -u) -eq 0 ]] || apt=(sudo "${apt[@]}")
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2 \
    || { "${apt[@]}" update -qq >&2; DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2; }
  # Debian starts the packaged containerd service where systemd runs; the nodes run their own.
}
node_packages

all_there() { for c in "${COMPONENTS[@]}"; do [[ -x "$OUT/$c" ]] || return 1; done; }
if all_there; then echo "$OUT"; exit 0; fi
mkdir -p "$OUT"
exec 9>"$OUT/.build.lock"
flock 9
"$HERE/build-kube-components.sh" "$KUBE_VERSION" "$OUT" "${COMPONENTS[@]}"
echo "$OUT"
