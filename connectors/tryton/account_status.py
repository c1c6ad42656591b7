"""Account status per customer (key `customer_code`; read only), computed from its receipts.

A customer appears when one of its invoices changed (posted, paid or cancelled: each writes the
invoice, so `write_date` covers every state change) or fell due after the cursor, so the CRM's
account status follows payments and due dates without a full re-read. Amounts are summed in
invoice currency (one company currency assumed). The shape is in `__init__.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from erphub.connectors.tryton.changes import LM, after_cursor, aware, changed_rows, within_cursor
from erphub.connectors.tryton.invoice import INVOICE_FIELDS, ISSUED_OUT, POSTED_OUT, Receipts
from erphub.connectors.tryton.rpc import TrytonRPC
from erphub.core.records import Cursor, Page, Record

STATUS_FIELDS = frozenset(
    {
        "customer_code",
        "customer_name",
        "outstanding_balance",
        "overdue_balance",
        "account_status",
        "open_invoices",
        "last_paid_date",
    }
)


class AccountStatus:
    def __init__(self, rpc: TrytonRPC, receipts: Receipts, now: Callable[[], dt.datetime]) -> None:
        self.rpc = rpc
        self.receipts = receipts
        self.now = now  # decides what fell due

    def read(self, since: Cursor | None, until: Cursor | None, page_size: int) -> Iterator[Page]:
        """One record per customer whose invoices changed, or fell due, after the cursor.

        A customer's `updated_at` is the latest change among its posted/paid invoices, or the
        start of the day after an open invoice's due date (when it became overdue, which no
        write records), whichever is later but not in the future.
        """
        now = self.now()
        stamps: dict[int, dt.datetime] = {}
        start = None if since is None else Cursor(since.updated_at)  # whole timestamps: re-filter below
        # Cancelled invoices too: cancelling one changes what its customer owes.
        for rows in changed_rows(self.rpc, "account.invoice", ISSUED_OUT, ["party"], start, None, 500):
            for r in rows:
                stamps[r["party"]] = max(stamps.get(r["party"], aware(r[LM])), aware(r[LM]))
        domain: list[Any] = [
            ["account.type.receivable", "=", True],
            ["reconciliation", "=", None],
            ["party", "!=", None],
            ["maturity_date", "<", now.date()],
        ]
        if since is not None:
            domain.append(["maturity_date", ">=", since.updated_at.date() - dt.timedelta(days=1)])
        for line in self.rpc.search_read("account.move.line", domain, ["party", "maturity_date"]):
            fell_due = dt.datetime.combine(line["maturity_date"] + dt.timedelta(days=1), dt.time(), dt.UTC)
            if fell_due <= now:
                stamps[line["party"]] = max(stamps.get(line["party"], fell_due), fell_due)
        ordered = sorted(
            (ts, pid)
            for pid, ts in stamps.items()
            if after_cursor(since, ts, pid) and within_cursor(until, ts, pid)
        )
        if not ordered:
            yield Page([], None)
            return
        for offset in range(0, len(ordered), page_size):
            chunk = ordered[offset : offset + page_size]
            data = self.data([pid for _, pid in chunk])
            records = [Record(str(pid), ts, data[pid]) for ts, pid in chunk]
            yield Page(records, records[-1].cursor())

    def data(self, party_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The status of each party from all its posted/paid invoices."""
        parties = {p["id"]: p for p in self.rpc.read("party.party", party_ids, ["code", "name"])}
        invoices = self.rpc.search_read(
            "account.invoice", [*POSTED_OUT, ["party", "in", party_ids]], ["party", *INVOICE_FIELDS, LM]
        )
        by_party: dict[int, list[dict[str, Any]]] = {pid: [] for pid in party_ids}
        for inv, data in zip(invoices, self.receipts.data(invoices), strict=True):
            by_party[inv["party"]].append(data)
        out = {}
        for pid in party_ids:
            items = by_party[pid]
            open_items = [i for i in items if i["amount_to_pay"] > 0]
            overdue = sum((i["amount_to_pay"] for i in open_items if i["status"] == "overdue"), Decimal(0))
            if overdue > 0:
                status = "overdue"
            elif any(i["status"] == "partly_paid" for i in open_items):
                status = "partly_paid"
            elif items and not open_items:
                status = "paid"
            else:
                status = "none"
            paid_dates = [i["paid_date"] for i in items if i["paid_date"]]
            out[pid] = {
                "customer_code": parties.get(pid, {}).get("code"),
                "customer_name": parties.get(pid, {}).get("name"),
                "outstanding_balance": sum((i["amount_to_pay"] for i in open_items), Decimal(0)),
                "overdue_balance": overdue,
                "account_status": status,
                "open_invoices": len(open_items),
                "last_paid_date": max(paid_dates) if paid_dates else None,
            }
        return out
