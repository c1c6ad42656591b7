"""Receipts: posted or paid customer invoices (`account.invoice` type out, key `number`; read only)
with what was paid, what is still due and when it falls due (the shape is in `__init__.py`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from erphub.connectors.tryton.changes import ReadPlan, Rows, fetch_records, read_pages
from erphub.connectors.tryton.rpc import TrytonRPC
from erphub.core.records import Cursor, Page, Record

RECEIPT_FIELDS = frozenset(
    {
        "number",
        "customer_code",
        "order_no",
        "currency",
        "invoice_date",
        "due_date",
        "total_amount",
        "amount_paid",
        "amount_to_pay",
        "state",
        "paid_date",
        "status",
    }
)
# The invoices that count as receipts (drafts and cancelled ones owe nothing).
POSTED_OUT: tuple[list[Any], ...] = (["type", "=", "out"], ["state", "in", ["posted", "paid"]])
# What change capture reads: those, and the cancelled ones too. Cancelling a posted invoice writes its
# state (and so its write_date) and nothing else: left out of the read, a cancelled invoice would
# never be seen, not even by a full read, and the CRM would keep what it owed.
ISSUED_OUT: tuple[list[Any], ...] = (["type", "=", "out"], ["state", "in", ["posted", "paid", "cancelled"]])
# What `Receipts.data` needs of an invoice row, besides its party.
INVOICE_FIELDS = (
    "number",
    "sales",
    "currency.code",
    "invoice_date",
    "total_amount",
    "amount_to_pay",
    "state",
    "lines_to_pay",
    "payment_lines",
)
READ = ReadPlan("account.invoice", ISSUED_OUT, ("party.code", *INVOICE_FIELDS))


def invoice_status(to_pay: Decimal, paid: Decimal, due: dt.date | None, today: dt.date) -> str:
    if to_pay <= 0:
        return "paid"
    if due is not None and due < today:
        return "overdue"
    if paid > 0:
        return "partly_paid"
    return "open"


class Receipts:
    def __init__(self, rpc: TrytonRPC, now: Callable[[], dt.datetime]) -> None:
        self.rpc = rpc
        self.now = now  # decides what is overdue

    def read(self, since: Cursor | None, until: Cursor | None, page_size: int) -> Iterator[Page]:
        return read_pages(self.rpc, READ, self.data, since, until, page_size)

    def fetch(self, ids: Sequence[str]) -> dict[str, Record]:
        return fetch_records(self.rpc, READ, self.data, ids)

    def data(self, rows: Rows) -> Rows:
        """Receipt records of invoice rows (reads their sales' references and move lines)."""
        sale_ids = sorted({s for r in rows for s in r.get("sales") or []})
        refs = {s["id"]: s["reference"] for s in self.rpc.read("sale.sale", sale_ids, ["reference"])}
        to_pay = [m for r in rows for m in r.get("lines_to_pay") or []]
        paid = [m for r in rows for m in r.get("payment_lines") or []]
        lines = {m["id"]: m for m in self.rpc.read("account.move.line", to_pay + paid, ["maturity_date", "date"])}
        today = self.now().date()
        out = []
        for r in rows:
            maturities = [
                lines[m]["maturity_date"]
                for m in r.get("lines_to_pay") or []
                if m in lines and lines[m].get("maturity_date")
            ]
            paid_dates = [lines[m]["date"] for m in r.get("payment_lines") or [] if m in lines]
            due = min(maturities) if maturities else r.get("invoice_date")
            total, to_pay_amount = r["total_amount"], r["amount_to_pay"]
            if r["state"] in ("paid", "cancelled"):
                to_pay_amount = Decimal(0)
            # A cancelled invoice owes nothing and was paid nothing.
            amount_paid = Decimal(0) if r["state"] == "cancelled" else total - to_pay_amount
            out.append(
                {
                    "number": r["number"],
                    "customer_code": (r.get("party.") or {}).get("code"),
                    "order_no": next((refs[s] for s in r.get("sales") or [] if refs.get(s)), None),
                    "currency": (r.get("currency.") or {}).get("code"),
                    "invoice_date": r["invoice_date"],
                    "due_date": due,
                    "total_amount": total,
                    "amount_paid": amount_paid,
                    "amount_to_pay": to_pay_amount,
                    "state": r["state"],
                    "paid_date": max(paid_dates) if paid_dates else None,
                    "status": "cancelled" if r["state"] == "cancelled"
                    else invoice_status(to_pay_amount, amount_paid, due, today),
                }
            )
        return out

    def find(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Customer invoices by number."""
        if not keys:
            return {}
        rows = self.rpc.search_read("account.invoice", [["type", "=", "out"], ["number", "in", keys]], ["number"])
        return {r["number"]: r for r in rows}
