#!/usr/bin/env bash
# Check erphub's alerting: rule syntax, rule unit tests, Alertmanager config and its routing.
# Installs Debian's prometheus packages first when promtool is missing (scripts/install_prometheus.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then
  scripts/install_prometheus.sh
fi

promtool check rules monitoring/alerts.yml
promtool test rules monitoring/alerts.test.yml
amtool check-config monitoring/alertmanager.yml

# Pages and tickets must reach different receivers.
route() {  # route <expected receiver> <label=value>...
  local want=$1; shift
  amtool config routes test --config.file=monitoring/alertmanager.yml --verify.receivers="$want" "$@" \
    2>/dev/null >/dev/null || { echo "alertmanager routes $* not to $want" >&2; exit 1; }
}
route erphub-pager severity=page alertname=ErphubSyncFailing pipeline=orders
route erphub-tickets severity=ticket alertname=ErphubThrottled system=kingdee
route erphub-tickets alertname=Unlabelled
echo "alert routing: pages -> erphub-pager, tickets -> erphub-tickets"

if [ -f monitoring/prometheus.example.yml ]; then
  # `check config` also loads the rule files the example names.
  promtool check config monitoring/prometheus.example.yml
fi
