#!/usr/bin/env bash
# Install Debian's prometheus + prometheus-alertmanager + prometheus-pushgateway (promtool, amtool, the live
# alert test and the live Pushgateway test) only when one of them is missing. Idempotent and quiet; never lets apt start the daemons.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 \
   && command -v prometheus >/dev/null 2>&1 && command -v prometheus-pushgateway >/dev/null 2>&1; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install_prometheus: need root or sudo" >&2; exit 1; }
  SUDO="sudo"
fi

# postinst runs `invoke-rc.d ... start`; a policy-rc.d that exits 101 denies it, so no daemon
# comes up on 0.0.0.0:9090/9091/9093 with the default config.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -x "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  CREATED_POLICY=1
fi
cleanup() { if [ "$CREATED_POLICY" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

# apt's chatter (debconf notes included) goes to a log that is shown only when something fails.
LOG=$(mktemp /tmp/install_prometheus.XXXXXX)
if ! { $SUDO apt-get update -qq \
       && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            prometheus prometheus-alertmanager prometheus-pushgateway; } >"$LOG" 2>&1; then
  cat "$LOG" >&2; rm -f "$LOG"; exit 1
fi
rm -f "$LOG"

command -v promtool >/dev/null 2>&1 || { echo "install_prometheus: promtool still missing" >&2; exit 1; }
command -v prometheus-pushgateway >/dev/null 2>&1 || { echo "install_prometheus: prometheus-pushgateway still missing" >&2; exit 1; }
