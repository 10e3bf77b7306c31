#!/usr/bin/env bash
# A private libvirtd per vmove "host", so several libvirt hosts can live (and migrate to each
# other) on one machine without systemd.
#
#   hack/libvirt-sandbox.sh start  <name> <dir> [--ports MIN-MAX] [--tls-dir DIR]
#   hack/libvirt-sandbox.sh stop   <name> <dir> [--kill-guests]
#   hack/libvirt-sandbox.sh status <name> <dir>
#
# Each daemon runs in its own mount namespace where /etc/libvirt, /var/lib/libvirt,
# /var/cache/libvirt, /var/log/libvirt and /run/libvirt are bind mounts of folders under <dir>;
# everything else (disk folders, images, the other hosts' sockets) is the machine's own view.
# `start` and `status` print shell-style `key=value` lines (socket, uri, pid); `start` is
# idempotent and returns once the socket accepts connections. `stop` stops the daemon; guests
# keep running (libvirtd re-attaches to them on the next start) unless --kill-guests.
# Exit codes: 0 ok / running, 3 not running (status), 1 error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
templates="$here/libvirt"

die() { echo "libvirt-sandbox: $*" >&2; exit 1; }
usage() { sed -n '5,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,3\}//' >&2; exit 1; }

[[ $# -ge 3 ]] || usage
cmd="$1" name="$2" dir="$3"
shift 3
[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "host name '$name' must match [A-Za-z0-9._-]+"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd -P)"
case "$dir" in
  /etc/libvirt* | /var/lib/libvirt* | /var/cache/libvirt* | /var/log/libvirt* | /run/libvirt* | /var/run/*)
    die "<dir> must not lie under a folder the sandbox bind-mounts over: $dir" ;;
esac

socket="$dir/run/libvirt/libvirt-sock"
pidfile="$dir/run/libvirtd.pid"
uri="qemu:///system?socket=$socket"
peer_uri="qemu+unix:///system?socket=$socket"

# The pid of this sandbox's libvirtd, when it runs (checked against /proc, not just the file).
daemon_pid() {
  local pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ && -d /proc/$pid ]] || return 1
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == */libvirtd* ]] || return 1
  echo "$pid"
}

# Pids of the QEMU processes this sandbox's daemon started (libvirt keeps <domain>.pid files).
guest_pids() {
  local f pid
  for f in "$dir"/run/libvirt/qemu/*.pid; do
    [[ -e "$f" ]] || continue
    pid="$(tr -dc 0-9 <"$f")"
    [[ -n "$pid" && -d /proc/$pid ]] || continue
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" == *qemu-system* ]] && echo "$pid"
  done
  return 0
}

# Those of the given pids that still exist.
alive() {
  local p
  for p in "$@"; do [[ -d /proc/$p ]] && echo "$p"; done
  return 0
}

print_info() {
  echo "name=$name"
  echo "socket=$socket"
  echo "uri=$uri"
  echo "peer_uri=$peer_uri"
  echo "pid=${1:-}"
}

ensure_packages() {
  local missing=()
  command -v libvirtd >/dev/null || [[ -x /usr/sbin/libvirtd ]] || missing+=(libvirt-daemon-system libvirt-daemon-driver-qemu)
  command -v virsh >/dev/null || missing+=(libvirt-clients)
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  command -v qemu-img >/dev/null || missing+=(qemu-utils)
  command -v unshare >/dev/null || missing+=(util-linux)
  if ((${#missing[@]})); then
    echo "libvirt-sandbox: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
  fi
  # libvirtd resolves its built-in default guest user at start-up, even though qemu.conf
  # overrides it with root.
  if ! getent passwd libvirt-qemu >/dev/null; then
    local group=kvm
    getent group kvm >/dev/null || groupadd --system kvm
    useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin \
      --gid "$group" libvirt-qemu
  fi
}

# A random UUID, generated once per host folder and kept (migration compares host UUIDs).
host_uuid() {
  local f="$dir/host-uuid"
  if [[ ! -s "$f" ]]; then
    local u
    while :; do
      u="$(cat /proc/sys/kernel/random/uuid)"
      # libvirt refuses a UUID whose hex digits are all the same.
      [[ "$(echo "$u" | tr -d '-' | fold -w1 | sort -u | wc -l)" -gt 1 ]] && break
    done
    echo "$u" >"$f"
  fi
  cat "$f"
}

render() { # template output
  sed -e "s|@NAME@|$name|g" -e "s|@DIR@|$dir|g" -e "s|@HOST_UUID@|$uuid|g" \
    -e "s|@PORT_MIN@|$port_min|g" -e "s|@PORT_MAX@|$port_max|g" \
    -e "s|@LOG_LEVEL@|$log_level|g" \
    "$templates/$1" >"$2.tmp"
  mv "$2.tmp" "$2"
}

wait_for_socket() {
  local pid="$1" i
  for ((i = 0; i < 300; i++)); do
    if [[ -S "$socket" ]] && virsh -q -c "$uri" uri >/dev/null 2>&1; then return 0; fi
    [[ -d /proc/$pid ]] || { tail -n 20 "$dir/log/libvirtd.log" "$dir/log/libvirtd.stderr" >&2 2>/dev/null || true; die "libvirtd exited during start-up"; }
    sleep 0.1
  done
  die "libvirtd did not open $socket within 30 s"
}

start() {
  local ports="" tls_dir=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --ports) ports="$2"; shift 2 ;;
      --tls-dir) tls_dir="$2"; shift 2 ;;
      *) usage ;;
    esac
  done
  local pid
  if pid="$(daemon_pid)"; then print_info "$pid"; return 0; fi

  ensure_packages
  local port_min port_max
  if [[ -n "$ports" ]]; then
    [[ "$ports" =~ ^([0-9]+)-([0-9]+)$ ]] || die "--ports wants MIN-MAX, got '$ports'"
    port_min="${BASH_REMATCH[1]}" port_max="${BASH_REMATCH[2]}"
  else
    # A default range of 64 ports picked from the name; pass --ports to choose explicitly.
    local slot=$(($(printf '%s' "$name" | cksum | cut -d' ' -f1) % 200))
    port_min=$((50000 + slot * 64)) port_max=$((50000 + slot * 64 + 63))
  fi
  ((port_min <= port_max)) || die "empty port range $port_min-$port_max"
  local uuid log_level="${LIBVIRT_SANDBOX_LOG_LEVEL:-3}"
  uuid="$(host_uuid)"

  mkdir -p "$dir"/etc/libvirt/{qemu,hooks,nwfilter,secrets,storage} "$dir"/var/lib/libvirt \
    "$dir"/var/cache/libvirt "$dir"/var/log/libvirt "$dir"/run/libvirt "$dir"/log
  render libvirtd.conf.in "$dir/etc/libvirt/libvirtd.conf"
  render qemu.conf.in "$dir/etc/libvirt/qemu.conf"
  if [[ -n "$tls_dir" ]]; then
    # Migrations with VIR_MIGRATE_TLS (and their NBD streams) use this host's certificate in
    # QEMU's layout (ca-cert.pem, server-*.pem, client-*.pem); each end checks the other's.
    [[ -f "$tls_dir/ca-cert.pem" && -f "$tls_dir/server-cert.pem" ]] || die "--tls-dir $tls_dir holds no ca-cert.pem / server-cert.pem"
    printf 'migrate_tls_x509_cert_dir = "%s"\nmigrate_tls_x509_verify = 1\n' "$(cd "$tls_dir" && pwd -P)" >>"$dir/etc/libvirt/qemu.conf"
  fi
  # Stale sockets of a daemon that died would make the new one refuse to start.
  rm -f "$dir"/run/libvirt/libvirt-sock* "$dir"/run/libvirt/libvirt-admin-sock "$pidfile"

  local mounts=(/etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/libvirt)
  local m script=""
  for m in "${mounts[@]}"; do
    mkdir -p "$m"
    script+="mount --bind '$dir$m' '$m' && "
  done
  script+="exec /usr/sbin/libvirtd --pid-file '$pidfile' --config '$dir/etc/libvirt/libvirtd.conf'"
  # setsid: the daemon outlives this script and the caller's session; unshare and sh exec, so
  # the pid started here is libvirtd's own.
  setsid unshare --mount --propagation private -- /bin/sh -c "$script" \
    </dev/null >>"$dir/log/libvirtd.stderr" 2>&1 9>&- &
  pid=$!
  echo "$name" >"$dir/name"
  wait_for_socket "$pid"
  pid="$(daemon_pid)" || die "libvirtd started but wrote no pid file"
  print_info "$pid"
}

stop() {
  local kill_guests=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --kill-guests) kill_guests=1; shift ;;
      *) usage ;;
    esac
  done
  local pid="" i
  pid="$(daemon_pid)" || pid=""
  if ((kill_guests)); then
    # Guests first, while the daemon still watches them: it records them as shut off.
    local guests
    guests="$(guest_pids)"
    if [[ -n "$guests" ]]; then
      kill -TERM $guests 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        guests="$(alive $guests)"
        [[ -z "$guests" ]] && break
        sleep 0.1
      done
      if [[ -n "$guests" ]]; then kill -KILL $guests 2>/dev/null || true; fi
    fi
    # Give the daemon a moment to notice the monitors closed before it goes.
    if [[ -n "$pid" ]]; then sleep 0.5; fi
  fi
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      [[ -d /proc/$pid ]] || break
      sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
      echo "libvirt-sandbox: libvirtd $pid ignored SIGTERM for 10 s, killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

status() {
  local pid
  if pid="$(daemon_pid)"; then
    print_info "$pid"
    echo "guests=$(guest_pids | xargs)"
    return 0
  fi
  print_info ""
  echo "guests=$(guest_pids | xargs)"
  return 3
}

# One start or stop of a sandbox at a time (two agents opening the same host, say).
exec 9>"$dir/.sandbox.lock"
case "$cmd" in
  start) flock 9 && start "$@" ;;
  stop) flock 9 && stop "$@" ;;
  status) status "$@" ;;
  *) usage ;;
esac
