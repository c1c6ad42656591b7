"""One sandbox in this process, for the benches: seeded, served on 127.0.0.1, URL on the first line.

    python bench/sandbox_proc.py jiandaoyun --customers 20000 [--no-limits]
    python bench/sandbox_proc.py kingdee

Jiandaoyun gets `--customers` formal (正式) customers CUS-000001.. with valid credit codes, staff and
groups the Kingdee sandbox knows, so every one of them moves. Kingdee starts with its reference data
and no customer. Runs until stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from erphub import sandbox as sandboxes
from erphub.sandbox.fakedata import Fake

GROUPS = ("KA", "SMB", "SMB", "GOV")
DISTINCT = 2000  # generated companies, reused with distinct codes and names beyond that


def customer_rows(n: int) -> list[dict[str, Any]]:
    companies = []
    for j in range(min(n, DISTINCT)):
        if j % 500 == 0:  # one generator has a few thousand distinct company names: start a new one
            fake = Fake(2026 + j)
        companies.append((fake.company(), fake.staff_code(), fake.rng.choice(GROUPS)))
    rows = []
    for i in range(1, n + 1):
        company, staff, group = companies[(i - 1) % len(companies)]
        suffix = "" if i <= 500 else f"{i}"  # names stay distinct past one generator's first 500
        rows.append({
            "customer_code": f"CUS-{i:07d}", "customer_name": f"{company.name}{suffix}",
            "short_name": company.short_name, "credit_code": company.credit_code, "phone": company.phone,
            "contact_name": company.contact_name, "email": company.email, "address": company.address,
            "customer_group": group, "salesperson": staff, "currency": "CNY", "status": "正式",
            "erp_customer_no": "", "account_status": "none", "outstanding_balance": 0,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=["jiandaoyun", "kingdee"])
    parser.add_argument("--customers", type=int, default=0)
    parser.add_argument("--no-limits", action="store_true", help="Jiandaoyun: do not answer 8304 above its limits")
    args = parser.parse_args()
    if args.name == "jiandaoyun":
        box = sandboxes.create("jiandaoyun", seed_data=False, enforce_limits=not args.no_limits)
        # Stamped 2 s apart over the past weeks, as a CRM's edits are: an incremental run's overlap
        # window (the connector's lag) then holds a few records, not all of them.
        base = datetime.now(UTC) - timedelta(seconds=2 * args.customers + 3600)
        for i, row in enumerate(customer_rows(args.customers)):
            box.state.insert_plain("customer_form", row, at=base + timedelta(seconds=2 * i))
    else:
        box = sandboxes.create("kingdee", seed_customers=0, seed_receipts=0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with box.serve() as server:
        print(f"URL {server.base_url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
