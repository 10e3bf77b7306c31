#!/usr/bin/env bash
# Installs tmux from Debian's packages when missing: the plugin's terminal test runs
# `kubectl vmove … --watch` in a real tmux pane and reads the screen with capture-pane.
# Prints the tmux path.
set -euo pipefail

log() { echo "[tmux] $*" >&2; }
sudo_if_needed() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! command -v tmux >/dev/null; then
  log "installing tmux"
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get install -y -qq --no-install-recommends tmux >&2 \
    || { log "apt-get update"; sudo_if_needed apt-get update -qq >&2; sudo_if_needed apt-get install -y -qq --no-install-recommends tmux >&2; }
fi
command -v tmux
