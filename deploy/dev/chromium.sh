#!/usr/bin/env bash
# Installs Debian's chromium (headless browser for the web UI's browser test,
# cmd/ebbflow/internal/dev TestUIInBrowser) when it is missing, and prints its
# path. Idempotent; the install is bounded by a timeout.
set -euo pipefail
if path=$(command -v chromium 2>/dev/null); then
  echo "$path"; exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "chromium.sh: installing chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
timeout 900 $sudo apt-get install -y --no-install-recommends chromium >&2 || {
  timeout 300 $sudo apt-get update >&2
  timeout 900 $sudo apt-get install -y --no-install-recommends chromium >&2
}
command -v chromium
