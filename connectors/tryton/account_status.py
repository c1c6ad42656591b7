"""Account status per customer (key `customer_code`; read only), computed from its receipts.

A customer appears when one of its invoices changed (posted, paid or cancelled: each writes the
invoice, so `write_date` covers every state change) or fell due after the cursor, so the CRM's
account status follows payments and due dates without a full re-read. The shape is in `__init__.py`.

Currencies: `outstanding_balance` and `overdue_balance` are in the company currency (`currency`),
each invoice's amount to pay converted with Tryton's own rate for it — the ratio of its receivable
move lines (debit - credit, company currency, as Tryton posted them) to its total in invoice
currency — so a USD and a CNY invoice are never added as one number; `balances` keeps the amounts
per invoice currency. Status: overdue (something past due), partly_paid, open (owed, not yet due),
paid (invoiced, nothing owed), none (no posted invoice).
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
        "currency",
        "balances",
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
        ratios = self._company_ratios(invoices)
        by_party: dict[int, list[tuple[dict[str, Any], Decimal]]] = {pid: [] for pid in party_ids}
        for inv, data in zip(invoices, self.receipts.data(invoices), strict=True):
            by_party[inv["party"]].append((data, ratios.get(inv["id"], Decimal(1))))
        company = self._company_currency()
        out = {}
        for pid in party_ids:
            items = by_party[pid]
            open_items = [(i, r) for i, r in items if i["amount_to_pay"] > 0]
            overdue_items = [(i, r) for i, r in open_items if i["status"] == "overdue"]
            balances: dict[str, dict[str, Decimal]] = {}
            for i, _ in open_items:
                entry = balances.setdefault(str(i["currency"]), {"outstanding": Decimal(0), "overdue": Decimal(0)})
                entry["outstanding"] += i["amount_to_pay"]
                if i["status"] == "overdue":
                    entry["overdue"] += i["amount_to_pay"]
            overdue = _converted(overdue_items)
            if overdue > 0:
                status = "overdue"
            elif any(i["status"] == "partly_paid" for i, _ in open_items):
                status = "partly_paid"
            elif open_items:
                status = "open"  # owed but not yet due
            elif items:
                status = "paid"
            else:
                status = "none"
            paid_dates = [i["paid_date"] for i, _ in items if i["paid_date"]]
            out[pid] = {
                "customer_code": parties.get(pid, {}).get("code"),
                "customer_name": parties.get(pid, {}).get("name"),
                "outstanding_balance": _converted(open_items),
                "overdue_balance": overdue,
                "currency": company,
                "balances": balances,
                "account_status": status,
                "open_invoices": len(open_items),
                "last_paid_date": max(paid_dates) if paid_dates else None,
            }
        return out

    def _company_ratios(self, invoices: list[dict[str, Any]]) -> dict[int, Decimal]:
        """Invoice id -> company-currency amount per unit of invoice currency, as Tryton posted it."""
        line_ids = [m for inv in invoices for m in inv.get("lines_to_pay") or []]
        lines = {m["id"]: m for m in self.rpc.read("account.move.line", line_ids, ["debit", "credit"])}
        ratios: dict[int, Decimal] = {}
        for inv in invoices:
            company_total = sum(
                (lines[m]["debit"] - lines[m]["credit"] for m in inv.get("lines_to_pay") or [] if m in lines),
                Decimal(0),
            )
            total = inv.get("total_amount") or Decimal(0)
            if total and company_total:
                ratios[inv["id"]] = company_total / total
        return ratios

    def _company_currency(self) -> str | None:
        company = self.rpc.context.get("company")
        if not company:
            return None
        [row] = self.rpc.read("company.company", [int(company)], ["currency.code"]) or [{}]
        return (row.get("currency.") or {}).get("code")


def _converted(items: list[tuple[dict[str, Any], Decimal]]) -> Decimal:
    """Amounts to pay in company currency, at each invoice's own posted rate, to the cent."""
    total = sum((i["amount_to_pay"] * ratio for i, ratio in items), Decimal(0))
    return total.quantize(Decimal("0.01"))
