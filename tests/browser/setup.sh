#!/usr/bin/env bash
# Installs what the browser test needs: Debian's Chromium and playwright-core (from package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d node_modules/playwright-core ]; then
  echo "==> npm ci (playwright-core)"
  npm ci --no-audit --no-fund --loglevel=error
fi
