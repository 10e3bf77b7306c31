#!/usr/bin/env bash
# Installs the Lua interpreters the Argo CD health checks (config/argocd) are tested with, from
# Debian's packages, when missing: lua5.1, the dialect of gopher-lua that Argo CD runs them in,
# and lua5.4, today's Lua (a check must not lean on either's quirks). Prints both paths, one a line.
set -euo pipefail

log() { echo "[lua] $*" >&2; }
sudo_if_needed() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

need=()
for v in 5.1 5.4; do command -v "lua$v" >/dev/null || need+=("lua$v"); done
if (( ${#need[@]} )); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 \
    || { log "apt-get update"; sudo_if_needed apt-get update -qq >&2; sudo_if_needed apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; }
fi
command -v lua5.1
command -v lua5.4
