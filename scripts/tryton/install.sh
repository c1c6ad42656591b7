#!/usr/bin/env bash
# Create .venv-tryton (Tryton's own venv: the hub only talks to it over HTTP) with trytond 8.2 and the
# modules the connector uses. Idempotent: a venv that already imports every module is left alone.
#   usage: scripts/tryton/install.sh [VENV_DIR]     (default: <repo>/.venv-tryton)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-${TRYTON_VENV:-$ROOT/.venv-tryton}}"
PY="${PYTHON:-python3}"

# sale pulls in stock (shipments, shipment_state), country, account_product and account_invoice_stock.
PACKAGES=(
  "trytond==8.2.*" "proteus==8.2.*"
  "trytond-party==8.2.*" "trytond-company==8.2.*" "trytond-currency==8.2.*" "trytond-country==8.2.*"
  "trytond-product==8.2.*" "trytond-stock==8.2.*" "trytond-sale==8.2.*" "trytond-account==8.2.*"
  "trytond-account-invoice==8.2.*" "trytond-sale-opportunity==8.2.*"
)
MODULES="party company currency country product stock sale account account_invoice sale_opportunity"

check() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$MODULES" <<'PY' >/dev/null 2>&1
import importlib, sys
import trytond, proteus
assert trytond.__version__.startswith("8.2"), trytond.__version__
for name in sys.argv[1].split():
    importlib.import_module(f"trytond.modules.{name}")
PY
}

if check; then
  echo "tryton venv ok: $VENV ($("$VENV/bin/python" -c 'import trytond; print(trytond.__version__)'))"
  exit 0
fi

start=$(date +%s.%N)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}"
check || { echo "tryton install incomplete in $VENV" >&2; exit 1; }
end=$(date +%s.%N)
printf 'tryton venv installed: %s in %.1f s\n' "$VENV" "$(echo "$end - $start" | bc)"
