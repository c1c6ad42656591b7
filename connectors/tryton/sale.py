"""Sales orders: Tryton sales (`sale.sale`, key `reference` = the CRM order number) with their lines.

Taxes come from the product; a gross price is divided by 1 + the product's customer tax rates.
Writes create drafts, which `settings.sale_workflow` quotes or confirms. A draft is rewritten on
update (lines replaced); past draft the ERP owns the order, so an identical re-send is accepted
and a change refused with code `locked`. The record shape is in `__init__.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from erphub.connectors.tryton.changes import (
    ReadPlan,
    Rows,
    fetch_records,
    read_by_change_time,
    sale_change_times,
    sale_times_of,
)
from erphub.connectors.tryton.refdata import RefData
from erphub.connectors.tryton.rpc import TrytonRPC
from erphub.connectors.tryton.settings import TrytonSettings
from erphub.connectors.tryton.values import check_fields, reference, to_date, to_decimal
from erphub.connectors.tryton.writer import Finder, WritePlan
from erphub.core.errors import RecordWriteRefused
from erphub.core.records import Cursor, Page, Record, WriteAction, WriteRequest

SALE_FIELDS = frozenset(
    {
        "reference",
        "number",
        "customer_code",
        "sale_date",
        "currency",
        "description",
        "payment_term",
        "state",
        "shipment_state",
        "invoice_state",
        "untaxed_amount",
        "tax_amount",
        "total_amount",
        "shipped_date",
        "lines",
    }
)
SALE_LINE_FIELDS = frozenset(
    {
        "product",
        "description",
        "quantity",
        "unit",
        "unit_price",
        "unit_price_tax_included",
        "tax_rate",
        "amount",
        "shipped_quantity",
    }
)
READ = ReadPlan(
    "sale.sale",
    (),
    (
        "reference",
        "number",
        "party.code",
        "sale_date",
        "currency.code",
        "description",
        "payment_term.name",
        "state",
        "shipment_state",
        "invoice_state",
        "untaxed_amount",
        "tax_amount",
        "total_amount",
        "lines",
    ),
)
# The buttons each `settings.sale_workflow` presses on a new or updated draft, in order.
WORKFLOW_STEPS: dict[str, list[str]] = {"draft": [], "quote": ["quote"], "confirm": ["quote", "confirm"]}


class Sales:
    def __init__(self, rpc: TrytonRPC, ref: RefData, settings: TrytonSettings, find_party: Finder) -> None:
        self.rpc = rpc
        self.ref = ref
        self.settings = settings
        self.find_party = find_party  # a sale's customer_code is a party code

    def read(self, since: Cursor | None, until: Cursor | None, page_size: int) -> Iterator[Page]:
        """Sales by change time: their own, or their stock moves' when later (see sale_change_times)."""
        times = sale_change_times(self.rpc, since)
        return read_by_change_time(self.rpc, READ, self.data, times, since, until, page_size)

    def fetch(self, ids: Sequence[str]) -> dict[str, Record]:
        """Sales by id with the change time a read gives them (their own or their moves', when later)."""
        found = fetch_records(self.rpc, READ, self.data, ids)
        times = sale_times_of(self.rpc, [int(i) for i in found])
        return {i: Record(i, times.get(int(i), r.updated_at), r.data) for i, r in found.items()}

    def data(self, rows: Rows) -> Rows:
        """Sales order records of sale rows (reads their lines, taxes and customer moves)."""
        line_ids = [lid for r in rows for lid in r.get("lines") or []]
        lines = {
            ln["id"]: ln
            for ln in self.rpc.read(
                "sale.line",
                line_ids,
                [
                    "type",
                    "product.code",
                    "description",
                    "quantity",
                    "unit",
                    "unit_price",
                    "amount",
                    "taxes",
                    "moves",
                ],
            )
        }
        move_ids = [m for ln in lines.values() for m in ln.get("moves") or []]
        moves = {
            m["id"]: m
            for m in self.rpc.read("stock.move", move_ids, ["state", "quantity", "effective_date", "to_location.type"])
        }
        rates = self.ref.tax_rates()
        out = []
        for r in rows:
            shipped_dates: list[dt.date] = []
            out_lines = []
            for lid in r.get("lines") or []:
                ln = lines.get(lid)
                if ln is None or ln.get("type") != "line":
                    continue
                done = [
                    moves[m]
                    for m in ln.get("moves") or []
                    if m in moves
                    and moves[m]["state"] == "done"
                    and (moves[m].get("to_location.") or {}).get("type") == "customer"
                ]
                shipped_dates += [m["effective_date"] for m in done if m.get("effective_date")]
                rate = sum((rates.get(t, Decimal(0)) for t in ln.get("taxes") or []), Decimal(0))
                price = ln["unit_price"]
                out_lines.append(
                    {
                        "product": (ln.get("product.") or {}).get("code"),
                        "description": ln.get("description") or None,
                        "quantity": Decimal(str(ln["quantity"])),
                        "unit": self.ref.unit_name(ln["unit"]) if ln.get("unit") else None,
                        "unit_price": price,
                        "unit_price_tax_included": (price * (1 + rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)
                        if price is not None
                        else None,
                        "tax_rate": (rate * 100).normalize(),
                        "amount": ln["amount"],
                        "shipped_quantity": Decimal(str(sum(m["quantity"] for m in done))),
                    }
                )
            out.append(
                {
                    "reference": r["reference"],
                    "number": r["number"],
                    "customer_code": (r.get("party.") or {}).get("code"),
                    "sale_date": r["sale_date"],
                    "currency": (r.get("currency.") or {}).get("code"),
                    "description": r["description"],
                    "payment_term": (r.get("payment_term.") or {}).get("name"),
                    "state": r["state"],
                    "shipment_state": r["shipment_state"],
                    "invoice_state": r["invoice_state"],
                    "untaxed_amount": r["untaxed_amount"],
                    "tax_amount": r["tax_amount"],
                    "total_amount": r["total_amount"],
                    "shipped_date": max(shipped_dates) if shipped_dates else None,
                    "lines": out_lines,
                }
            )
        return out

    def find(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Sales by reference, with the state and lines an update needs."""
        if not keys:
            return {}
        rows = self.rpc.search_read(
            "sale.sale",
            [["reference", "in", keys]],
            ["reference", "state", "party", "party.code", "lines", "sale_date", "description", "currency",
             "payment_term"],
            order=[["id", "ASC"]],
        )
        found: dict[str, dict[str, Any]] = {}
        for r in rows:
            found.setdefault(r["reference"], r)  # the oldest wins should a duplicate exist
        return found

    def plan(self) -> WritePlan:
        return WritePlan(
            "sale.sale",
            "reference",
            "sales order",
            self.find,
            self.create_values,
            self.update,
            after_create=self.workflow,
            after_create_name=self.settings.sale_workflow,
        )

    def create_values(self, req: WriteRequest, key: str) -> dict[str, Any]:
        data = req.data
        check_fields(data, SALE_FIELDS, "sales order")
        if not data.get("customer_code"):
            raise RecordWriteRefused("required", "customer_code is required", "customer_code")
        values = self._header(data)
        values.update(
            reference=key,
            company=self.rpc.context["company"],
            invoice_method=self.settings.sale_invoice_method,
            shipment_method=self.settings.sale_shipment_method,
            lines=[["create", self._lines(data)]],
        )
        if "currency" not in values:
            values["currency"] = self._company_currency()
        return values

    def update(self, req: WriteRequest, existing: dict[str, Any]) -> WriteAction:
        """Apply a change the way Tryton allows it, and say whether anything was applied.

        A draft is rewritten. A quotation goes through Tryton's own workflow: back to draft
        (`draft` button), rewritten, quoted again (and confirmed when so configured). Past quotation
        the ERP owns the order: an unchanged re-send is UNCHANGED, a change is refused as `locked`
        naming what differs, so nothing is ever counted delivered that Tryton did not apply.
        """
        data = req.data
        check_fields(data, SALE_FIELDS, "sales order")
        if existing["state"] != "draft":
            changes = self.changes(data, existing)
            if not changes:
                return WriteAction.UNCHANGED
            if existing["state"] != "quotation":
                raise RecordWriteRefused(
                    "locked",
                    f"sales order {existing['reference']} is {existing['state']} in Tryton; its "
                    f"{', '.join(changes)} cannot be changed (only draft and quotation orders can)",
                    "state",
                )
            self.rpc.button("sale.sale", "draft", [existing["id"]])
        self._rewrite(data, existing)
        if existing["state"] == "quotation":
            self._requote([existing["id"]])
        else:
            self.workflow([existing["id"]])
        return WriteAction.UPDATED

    def _rewrite(self, data: Mapping[str, Any], existing: Mapping[str, Any]) -> None:
        values = self._header(data)
        if "lines" in data:
            values["lines"] = [["delete", existing.get("lines") or []], ["create", self._lines(data)]]
        if values:
            self.rpc.write("sale.sale", [existing["id"]], values)

    def _requote(self, ids: list[int]) -> None:
        """A quotation put back to draft to be changed is quoted again (and confirmed if configured)."""
        self.rpc.button("sale.sale", "quote", ids)
        if self.settings.sale_workflow == "confirm":
            self.rpc.button("sale.sale", "confirm", ids)

    def differing(self, batch: Sequence[WriteRequest]) -> set[str]:
        """Source ids of requests whose sale in Tryton differs from the request (or is gone)."""
        keys = {req.source_id: str(req.data.get("reference") or req.key or "") for req in batch}
        existing = self.find(sorted({k for k in keys.values() if k}))
        out: set[str] = set()
        for req in batch:
            sale = existing.get(keys[req.source_id])
            try:
                if sale is None or self.changes(req.data, sale):
                    out.add(req.source_id)
            except RecordWriteRefused:
                out.add(req.source_id)  # the write will say why
        return out

    def changes(self, data: Mapping[str, Any], existing: Mapping[str, Any]) -> list[str]:
        """The fields of a sale whose value in Tryton differs from what `data` would write."""
        values = self._header(data)
        changed: list[str] = [name for name in ("party", "currency", "payment_term", "sale_date", "description")
                   if name in values and (values[name] or None) != (existing.get(name) or None)]
        if "lines" in data:
            current = self.rpc.read("sale.line", existing.get("lines") or [],
                                    ["type", "product", "quantity", "unit", "unit_price", "description"])
            have = sorted(_line_key(ln) for ln in current if ln.get("type") == "line")
            want = sorted(_line_key(ln) for ln in self._lines(data))
            if have != want:
                changed.append("lines")
        return ["customer_code" if name == "party" else name for name in changed]

    def workflow(self, ids: list[int]) -> None:
        """Quote and/or confirm draft sales as configured (all-or-nothing per call)."""
        for step in WORKFLOW_STEPS[self.settings.sale_workflow]:
            states = {r["id"]: r["state"] for r in self.rpc.read("sale.sale", ids, ["state"])}
            todo = [i for i in ids if states.get(i) == ("draft" if step == "quote" else "quotation")]
            if todo:
                self.rpc.button("sale.sale", step, todo)

    def _lines(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        lines = data.get("lines")
        if not isinstance(lines, list) or not lines:
            raise RecordWriteRefused("required", "a sales order needs at least one line", "lines")
        out = []
        for n, line in enumerate(lines):
            where = f"lines[{n}]"
            if not isinstance(line, Mapping):
                raise RecordWriteRefused("invalid", f"{where} is not an object", "lines")
            check_fields(line, SALE_LINE_FIELDS, where)
            if not line.get("product"):
                raise RecordWriteRefused("required", f"{where}.product is required", f"{where}.product")
            product = reference(self.ref.product, str(line["product"]), f"{where}.product")
            quantity = to_decimal(line.get("quantity"), f"{where}.quantity")
            if quantity <= 0:
                raise RecordWriteRefused("invalid", f"{where}.quantity must be positive", f"{where}.quantity")
            unit_id = product["uom"]
            if line.get("unit"):
                unit = reference(self.ref.unit, str(line["unit"]), f"{where}.unit")
                if unit["category"] != product["uom_category"]:
                    raise RecordWriteRefused(
                        "invalid",
                        f"{where}.unit {line['unit']!r} does not fit the product's unit category",
                        f"{where}.unit",
                    )
                unit_id = unit["id"]
            if line.get("tax_rate") is not None:
                rate = to_decimal(line["tax_rate"], f"{where}.tax_rate")
                if rate != product["tax_rate"] * 100:
                    raise RecordWriteRefused(
                        "tax_mismatch",
                        f"{where}.tax_rate {rate}% differs from product {line['product']}'s "
                        f"{(product['tax_rate'] * 100).normalize()}% in Tryton",
                        f"{where}.tax_rate",
                    )
            if line.get("unit_price") is not None:
                price = to_decimal(line["unit_price"], f"{where}.unit_price")
            elif line.get("unit_price_tax_included") is not None:
                gross = to_decimal(line["unit_price_tax_included"], f"{where}.unit_price_tax_included")
                price = gross / (1 + product["tax_rate"])
            else:
                raise RecordWriteRefused(
                    "required", f"{where} needs unit_price or unit_price_tax_included", f"{where}.unit_price"
                )
            values: dict[str, Any] = {
                "type": "line",
                "product": product["id"],
                "quantity": float(quantity),
                "unit": unit_id,
                "unit_price": price.quantize(Decimal("0.0001"), ROUND_HALF_UP),
                "taxes": [["add", product["taxes"]]] if product["taxes"] else [],
            }
            if line.get("description"):
                values["description"] = str(line["description"])
            out.append(values)
        return out

    def _header(self, data: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if data.get("customer_code"):
            parties = self.find_party([str(data["customer_code"])])
            party = parties.get(str(data["customer_code"]))
            if party is None:
                raise RecordWriteRefused(
                    "unknown_reference", f"unknown customer {data['customer_code']!r}", "customer_code"
                )
            if not party.get("active", True):  # found by code, deactivated (Parties.find)
                raise RecordWriteRefused(
                    "inactive_reference", f"customer {data['customer_code']!r} is deactivated in Tryton",
                    "customer_code")
            values["party"] = party["id"]
            if party.get("addresses"):
                values["invoice_address"] = values["shipment_address"] = party["addresses"][0]
        currency = data.get("currency") or self.settings.default_currency
        if currency:
            values["currency"] = reference(self.ref.currency, str(currency), "currency")
        term = data.get("payment_term") or self.settings.default_payment_term
        if term:
            values["payment_term"] = reference(self.ref.payment_term, str(term), "payment_term")
        if "sale_date" in data:
            values["sale_date"] = to_date(data["sale_date"], "sale_date")
        if "description" in data:
            values["description"] = data["description"] or None
        return values

    def _company_currency(self) -> int:
        company = self.rpc.read("company.company", [self.rpc.context["company"]], ["currency"])
        return int(company[0]["currency"])


def _line_key(line: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies a sale line's content: product, quantity, unit, untaxed price, description."""
    price = line.get("unit_price")
    return (int(line["product"]), Decimal(str(line["quantity"])), int(line["unit"]),
            None if price is None else Decimal(str(price)).quantize(Decimal("0.0001"), ROUND_HALF_UP),
            line.get("description") or None)
