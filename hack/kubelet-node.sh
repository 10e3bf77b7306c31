#!/usr/bin/env bash
# One real Kubernetes node on this machine: containerd, kubelet and kube-proxy in a network
# namespace of their own (joined to the host by a veth pair on the bridge this script owns) and
# a mount namespace of their own, so two nodes on one machine see different /var/lib/vmove,
# /var/lib/kubelet, /run/containerd, /etc/cni/net.d and /var/log/pods — as two hosts would.
# Everything the node mounts lives and dies with that mount namespace.
#
#   kubelet-node.sh up   NET NAME INDEX NODE_DIR CLUSTER_DIR BIN_DIR   (prints the node's address)
#   kubelet-node.sh down NET NAME INDEX NODE_DIR
#   kubelet-node.sh bridge-up NET | bridge-down NET
#
# NET (0-9) keeps clusters apart on one machine (`make run`'s and a test's): its bridge is
# 10.213.NET.1/24 (the API server advertises it); node INDEX (1-9) is 10.213.NET.(10+INDEX)
# with pods in 10.214.(NET*10+INDEX).0/24. Needs root, cgroup v1 or v2, network namespaces.
set -euo pipefail

CGROUP_V1_CONTROLLERS=(cpu cpuacct cpuset memory devices freezer blkio pids systemd hugetlb net_cls perf_event)
# Node folders bound over the host's, inside the node's mount namespace.
# /run/netns too: the pods' network namespaces are files containerd makes there.
BOUND=(/var/lib/vmove /var/lib/kubelet /var/lib/cni /run/containerd /run/netns /etc/cni/net.d /var/log/pods /var/log/containers)

log() { echo "[kubelet-node] $*" >&2; }
net_vars() { # NET
  NET="$1"; [[ "$NET" =~ ^[0-9]$ ]] || { log "NET must be 0-9, not '$NET'"; exit 2; }
  BRIDGE="vmove-kn$NET" BRIDGE_ADDR="10.213.$NET.1"
}
netns_of() { echo "vmove-$NET-$1"; }
node_addr() { echo "10.213.$NET.$((10 + $1))"; }
pod_subnet() { echo "10.214.$((NET * 10 + $1)).0/24"; }
cgroup_of() { echo "vmove-$NET-$1"; }

bridge_up() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr show dev "$BRIDGE" | grep -q "$BRIDGE_ADDR/" || ip addr add "$BRIDGE_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

bridge_down() { ip link del "$BRIDGE" 2>/dev/null || true; }

# The pid of the process holding the node's mount namespace (see `up`), when it runs.
holder_pid() {
  local f="$1/holder.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -d "/proc/$pid" ]] && grep -q vmove-node-holder "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

# Runs a command inside the node (its network and mount namespaces).
in_node() { local pid="$1"; shift; nsenter --target "$pid" --net --mount -- "$@"; }

start_daemon() { # NAME LOGFILE PIDFILE HOLDER CMD...
  local name="$1" logf="$2" pidf="$3" pid="$4"; shift 4
  setsid nsenter --target "$pid" --net --mount -- "$@" >"$logf" 2>&1 < /dev/null &
  echo $! > "$pidf"
  log "$name started (pid $!)"
}

write_configs() { # NAME INDEX NODE_DIR CLUSTER_DIR
  local name="$1" index="$2" dir="$3" cluster="$4" addr pause_ref
  addr="$(node_addr "$index")"
  pause_ref="$(cat "$dir/pause.ref")"
  mkdir -p "$dir/etc-cni-net.d"
  cat > "$dir/etc-cni-net.d/10-vmove.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "vmove-pods", "plugins": [
  { "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
    "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$(pod_subnet "$index")" }]], "routes": [{ "dst": "0.0.0.0/0" }] } },
  { "type": "portmap", "capabilities": { "portMappings": true } } ] }
EOF
  cat > "$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd"
state = "/run/containerd/state"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  # Some machines (this one) refuse lowering oom_score_adj even to root: keep what is allowed.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = false
EOF
  cat > "$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $addr
authentication: { anonymous: { enabled: false }, webhook: { enabled: true } }
authorization: { mode: Webhook }
cgroupDriver: cgroupfs
# Both nodes share this machine's cgroup tree: each keeps its pods under its own root.
cgroupRoot: /$(cgroup_of "$name")
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
clusterDomain: cluster.local
failSwapOn: false
failCgroupV1: false
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
serializeImagePulls: false
# The nodes share one disk with the rest of the machine: evict on memory only.
evictionHard: { memory.available: 100Mi }
imageGCHighThresholdPercent: 100
localStorageCapacityIsolation: false
resolvConf: /etc/resolv.conf
EOF
  cat > "$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: $cluster/node-kube-proxy.kubeconfig }
hostnameOverride: $name
bindAddress: $addr
clusterCIDR: 10.214.0.0/16
mode: iptables
# A network namespace cannot change the machine-wide conntrack table size.
conntrack: { maxPerCore: 0 }
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
}

make_cgroups() { # NAME
  local cg c; cg="$(cgroup_of "$1")"
  [[ -f /sys/fs/cgroup/cgroup.controllers ]] && { mkdir -p "/sys/fs/cgroup/$cg"; return; }
  for c in "${CGROUP_V1_CONTROLLERS[@]}"; do
    [[ -d "/sys/fs/cgroup/$c" ]] || continue
    mkdir -p "/sys/fs/cgroup/$c/$cg"
  done
  if [[ -d /sys/fs/cgroup/cpuset/$cg ]]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus > "/sys/fs/cgroup/cpuset/$cg/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems > "/sys/fs/cgroup/cpuset/$cg/cpuset.mems"
  fi
}

# Removes the node's cgroups depth-first, once no process is left in them.
remove_cgroups() { # NAME
  local root cg; cg="$(cgroup_of "$1")"
  for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [[ -d "$root/$cg" ]] || continue
    find "$root/$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

up() {
  local name="$1" index="$2" dir="$3" cluster="$4" bin="$5" ns addr host_if pid
  ns="$(netns_of "$name")" addr="$(node_addr "$index")" host_if="vmkn$NET-$index"
  mkdir -p "$dir"
  bridge_up
  if ! ip netns list | grep -qw "$ns"; then
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name eth0 netns "$ns"
    ip link set "$host_if" master "$BRIDGE" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$BRIDGE_ADDR"
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
  fi
  if ! pid="$(holder_pid "$dir")"; then
    local binds="" b
    for b in "${BOUND[@]}"; do
      local src="$dir/$(echo "${b#/}" | tr / -)"
      mkdir -p "$src" "$b"
      binds+="mount --bind '$src' '$b'; "
    done
    # What a shared file system (NFS, CephFS) is to real hosts: one folder every node mounts.
    mkdir -p "$dir/../shared" /var/lib/vmove/shared "$dir/var-lib-vmove/shared"
    binds+="mount --bind '$dir/../shared' /var/lib/vmove/shared; "
    # The holder: a new mount namespace (private from the host's, then shared inside it, as
    # kubelet wants for mount propagation) with the node's folders bound in; it only sleeps.
    setsid nsenter --net="/run/netns/$ns" -- unshare --mount --propagation private -- \
      bash -c "mount --make-rshared /; $binds exec -a vmove-node-holder sleep infinity" </dev/null >/dev/null 2>&1 &
    echo $! > "$dir/holder.pid"
    for _ in $(seq 50); do grep -q vmove-node-holder "/proc/$!/cmdline" 2>/dev/null && break; sleep 0.1; done
    pid="$(holder_pid "$dir")" || { log "the node's namespace holder did not start"; exit 1; }
  fi
  make_cgroups "$name"
  write_configs "$name" "$index" "$dir" "$cluster"
  start_daemon containerd "$dir/containerd.log" "$dir/containerd.pid" "$pid" containerd --config "$dir/containerd.toml"
  local ok=""
  for _ in $(seq 100); do in_node "$pid" ctr version >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
  [[ -n "$ok" ]] || { log "containerd did not answer; $dir/containerd.log:"; tail -n 20 "$dir/containerd.log" >&2; exit 1; }
  local archive
  # The images the node starts with (no registry to pull from): the OCI archives beside the nodes.
  for archive in "$dir"/../images/*.oci.tar; do
    [[ -f "$archive" ]] || continue
    in_node "$pid" ctr -n k8s.io images import "$archive" >/dev/null
  done
  start_daemon kubelet "$dir/kubelet.log" "$dir/kubelet.pid" "$pid" "$bin/kubelet" \
    --config="$dir/kubelet.yaml" --kubeconfig="$cluster/node-$name.kubeconfig" \
    --hostname-override="$name" --node-ip="$addr" --root-dir=/var/lib/kubelet \
    --cert-dir="$dir/kubelet-pki" --node-labels=vmove.dev/hypervisor=true
  start_daemon kube-proxy "$dir/kube-proxy.log" "$dir/kube-proxy.pid" "$pid" "$bin/kube-proxy" --config="$dir/kube-proxy.yaml"
  echo "$addr"
}

stop_pidfile() { # PIDFILE GRACE_S
  local f="$1" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((${2:-5} * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  local name="$1" index="$2" dir="$3" ns pid cg p
  ns="$(netns_of "$name")"
  stop_pidfile "$dir/kube-proxy.pid" 2
  stop_pidfile "$dir/kubelet.pid" 5
  # Pods' processes (containerd-shim and what it runs) are not children of containerd: they are
  # the processes left in the node's cgroups, or in its network namespace.
  stop_pidfile "$dir/containerd.pid" 5
  for _ in 1 2 3; do
    for cg in /sys/fs/cgroup/*/"$(cgroup_of "$name")" /sys/fs/cgroup/"$(cgroup_of "$name")"; do
      [[ -d "$cg" ]] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    done
    if ip netns list | grep -qw "$ns"; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    fi
    sleep 0.3
  done
  if pid="$(holder_pid "$dir")"; then kill -KILL "$pid"; fi
  rm -f "$dir/holder.pid"
  remove_cgroups "$name"
  ip link del "vmkn$NET-$index" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}

action="${1:-}"; shift || true
net_vars "${1:-}"; shift || true
case "$action" in
  up) up "$@" ;;
  down) down "$@" ;;
  bridge-up) bridge_up ;;
  bridge-down) bridge_down ;;
  *) echo "usage: $0 up NET NAME INDEX NODE_DIR CLUSTER_DIR BIN_DIR | down NET NAME INDEX NODE_DIR | bridge-up NET | bridge-down NET" >&2; exit 2 ;;
esac
