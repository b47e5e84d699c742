#!/usr/bin/env bash
# ensure-prometheus.sh makes sure the `prometheus` binary the guardrail tests run
# is installed (Debian package `prometheus`). Idempotent: installs only when it is
# missing. It starts nothing: each test starts its own Prometheus on a free port
# with its own configuration and data directory, and stops it.
set -euo pipefail

log() { echo "ensure-prometheus: $*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

if command -v prometheus >/dev/null; then
  exit 0
fi
log "installing prometheus (Debian package)"
$SUDO apt-get update -qq >/dev/null || true
# The package's service is not wanted here (tests run their own instances);
# without an init system its start fails harmlessly, policy-rc.d keeps it quiet.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v prometheus >/dev/null || { log "prometheus is still not on PATH"; exit 1; }
log "$(prometheus --version 2>&1 | head -1)"
