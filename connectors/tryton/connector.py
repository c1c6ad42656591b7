"""The `tryton` connector: customers, sales orders, receipts and account status over JSON-RPC.

Record shapes (the dicts mappings produce and consume) are documented in `connectors/tryton/__init__.py`.

Incremental reads use `last_modified_at` (Tryton 8's searchable, orderable
`COALESCE(write_date, create_date)`): `write_date` alone is NULL on records never written after
creation (sales are; parties happen to be written at creation), so `write_date >= t` would miss
new sales. Pages are keyset-paged in (last_modified_at, id) order with the domain
`['OR', [lm > t], [lm = t, id > i]]`, and records at or before the cursor are dropped again on
the client side, so many records sharing a timestamp across a page boundary are each read once.
Timestamps are naive UTC with microseconds over JSON-RPC; records carry them as aware UTC.

Writes look every key up first (party `code`, sale `reference`), so a retried or replayed write
updates what an earlier attempt created instead of duplicating it. Creates of new records go as
one list call (Tryton runs it in one transaction: all or nothing); when Tryton refuses the list
with a UserError the records are created one by one, so the bad one fails alone. When a create's
answer is lost (timeout after the server may have applied it), the keys are looked up again and
only the missing records are created.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import partial
from typing import Any, ClassVar

from erphub.connectors.base import ConnectorSettings, SystemContext
from erphub.connectors.registry import register
from erphub.connectors.tryton.refdata import RefData, UnknownReference
from erphub.connectors.tryton.rpc import TrytonRPC, TrytonUserError
from erphub.connectors.tryton.settings import TrytonSettings

from erphub.core.errors import ConfigError, PermanentError, RecordWriteRefused, TransientError
from erphub.core.records import (
    Cursor,
    Direction,
    EntitySpec,
    Page,
    Record,
    RecordError,
    WriteAction,
    WriteRequest,
    WriteResult,
)

_ID_MAX = "\uffff"  # the engine's "every id at that timestamp" upper bound
_LM = "last_modified_at"
RW = frozenset({Direction.READ, Direction.WRITE})
RO = frozenset({Direction.READ})

CUSTOMER_FIELDS = frozenset(
    {
        "code",
        "name",
        "tax_identifier",
        "phone",
        "mobile",
        "email",
        "street",
        "city",
        "postal_code",
        "subdivision",
        "country",
    }
)
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


def _naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _after(since: Cursor | None, stamp: dt.datetime, record_id: int) -> bool:
    if since is None:
        return True
    if since.id == "":
        return _aware(stamp) >= since.updated_at
    return (_aware(stamp), record_id) > (since.updated_at, int(since.id))


def _within(until: Cursor | None, stamp: dt.datetime, record_id: int) -> bool:
    if until is None:
        return True
    if until.id in ("", _ID_MAX):
        return _aware(stamp) <= until.updated_at
    return (_aware(stamp), record_id) <= (until.updated_at, int(until.id))


def _decimal(value: Any, field: str) -> Decimal:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RecordWriteRefused("invalid_number", f"{field}: {value!r} is not a number", field) from None


def _date(value: Any, field: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise RecordWriteRefused(
            "invalid_date", f"{field}: {value!r} is not a date (YYYY-MM-DD)", field
        ) from None


def _user_failure(exc: TrytonUserError, default_field: str | None = None) -> RecordWriteRefused:
    return RecordWriteRefused(exc.kind, exc.detail, default_field)



def _request_key(req: WriteRequest, *, field: str, what: str) -> str:
    """The business key a write is matched by (party code, sale reference)."""
    key = req.data.get(field) or req.key
    if not key:
        raise RecordWriteRefused("missing_key", f"{what} has no {field}", field)
    return str(key)

@register("tryton")
class TrytonConnector:
    kind: ClassVar[str] = "tryton"
    settings_model: ClassVar[type[ConnectorSettings]] = TrytonSettings

    def __init__(self, settings: TrytonSettings, context: SystemContext) -> None:
        self.settings = settings
        self.context = context
        self.rpc = TrytonRPC(
            context,
            url=settings.url,
            database=settings.database,
            login=settings.login,
            password=settings.password,
            language=settings.language,
        )
        self.ref = RefData(self.rpc)
        # The clock that decides what is overdue (injectable so tests need not wait for a due date).
        self.now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    # -- protocol --------------------------------------------------------------------------
    def entities(self) -> Mapping[str, EntitySpec]:
        return {
            "customer": EntitySpec(
                "customer",
                "party.party",
                RW,
                CUSTOMER_FIELDS,
                "code",
                description="parties with their first address and contact mechanisms",
            ),
            "sales_order": EntitySpec(
                "sales_order",
                "sale.sale",
                RW,
                SALE_FIELDS,
                "reference",
                {"lines": SALE_LINE_FIELDS},
                description="sales keyed by `reference` (the CRM order number)",
            ),
            "receipt": EntitySpec(
                "receipt",
                "account.invoice",
                RO,
                RECEIPT_FIELDS,
                "number",
                description="posted customer invoices with what was paid and what is due",
            ),
            "account_status": EntitySpec(
                "account_status",
                "party.party",
                RO,
                STATUS_FIELDS,
                "customer_code",
                description="per customer: outstanding, overdue, paid status",
            ),
        }

    def read_changes(
        self, entity: str, since: Cursor | None, *, page_size: int = 100, until: Cursor | None = None
    ) -> Iterator[Page]:
        readers: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]] = {
            "customer": self._customers_data,
            "sales_order": self._sales_data,
            "receipt": self._receipts_data,
        }
        if entity == "account_status":
            yield from self._read_account_status(since, until, page_size)
            return
        if entity not in readers:
            raise ConfigError(f"unknown entity {entity!r}; tryton has: {', '.join(sorted(self.entities()))}")
        model, domain, fields = self._read_plan(entity)
        yielded = False
        for rows in self._changed(model, domain, fields, since, until, page_size):
            data = readers[entity](rows)
            records = [Record(str(r["id"]), _aware(r[_LM]), d) for r, d in zip(rows, data, strict=True)]
            if records:
                yielded = True
                yield Page(records, records[-1].cursor())
        if not yielded:
            yield Page([], None)

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        if entity == "customer":
            return self._write(
                batch,
                partial(_request_key, field="code", what="customer"),
                self._find_parties,
                self._party_create_values,
                self._party_update,
                "party.party",
                after_create=None,
            )
        if entity == "sales_order":
            return self._write(
                batch,
                partial(_request_key, field="reference", what="sales order"),
                self._find_sales,
                self._sale_create_values,
                self._sale_update,
                "sale.sale",
                after_create=self._sale_workflow,
            )
        raise ConfigError(f"entity {entity!r} of tryton cannot be written (read-only or unknown)")

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        finders = {
            "customer": self._find_parties,
            "sales_order": self._find_sales,
            "receipt": self._find_invoices,
            "account_status": self._find_parties,
        }
        if entity not in finders:
            raise ConfigError(f"unknown entity {entity!r}; tryton has: {', '.join(sorted(self.entities()))}")
        return {k: str(v["id"]) for k, v in finders[entity](list(keys)).items()}

    def check(self) -> None:
        version = self.rpc.server_version()
        if not version.startswith(("7.", "8.")):
            raise PermanentError(f"unsupported Tryton version {version}", system=self.context.name)
        if "company" not in self.rpc.context or not self.rpc.context.get("company"):
            raise PermanentError(
                "the Tryton user has no company (set one in its preferences)", system=self.context.name
            )
        self.rpc.search_read("party.party", [], ["code"], limit=1)

    def close(self) -> None:
        self.rpc.close()

    # -- incremental reading ---------------------------------------------------------------
    def _read_plan(self, entity: str) -> tuple[str, list[Any], list[str]]:
        if entity == "customer":
            return "party.party", [], ["code", "name", "addresses", "contact_mechanisms", "identifiers"]
        if entity == "sales_order":
            return (
                "sale.sale",
                [],
                [
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
                ],
            )
        return (
            "account.invoice",
            [["type", "=", "out"], ["state", "in", ["posted", "paid"]]],
            [
                "number",
                "party.code",
                "sales",
                "currency.code",
                "invoice_date",
                "total_amount",
                "amount_to_pay",
                "state",
                "lines_to_pay",
                "payment_lines",
            ],
        )

    def _changed(
        self,
        model: str,
        domain: list[Any],
        fields: Sequence[str],
        since: Cursor | None,
        until: Cursor | None,
        page_size: int,
    ) -> Iterator[list[dict[str, Any]]]:
        after = since
        while True:
            clauses = list(domain)
            if after is not None:
                ts = _naive(after.updated_at)
                if after.id == "":
                    clauses.append([_LM, ">=", ts])
                else:
                    clauses.append(["OR", [[_LM, ">", ts]], [[_LM, "=", ts], ["id", ">", int(after.id)]]])
            if until is not None:
                ts = _naive(until.updated_at)
                if until.id in ("", _ID_MAX):
                    clauses.append([_LM, "<=", ts])
                else:
                    clauses.append(["OR", [[_LM, "<", ts]], [[_LM, "=", ts], ["id", "<=", int(until.id)]]])
            rows = self.rpc.search_read(
                model, clauses, [*fields, _LM], limit=page_size, order=[[_LM, "ASC"], ["id", "ASC"]]
            )
            kept = [
                r
                for r in rows
                if r.get(_LM) is not None
                and _after(since, r[_LM], r["id"])
                and _within(until, r[_LM], r["id"])
            ]
            if kept:
                yield kept
            if len(rows) < page_size:
                return
            last = rows[-1]
            after = Cursor(_aware(last[_LM]), str(last["id"]))

    # -- customers -------------------------------------------------------------------------
    def _customers_data(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first_address = {r["id"]: r["addresses"][0] for r in rows if r.get("addresses")}
        addresses = {
            a["id"]: a
            for a in self.rpc.read(
                "party.address",
                list(first_address.values()),
                ["street", "city", "postal_code", "country.code", "subdivision.name"],
            )
        }
        mech_ids = [m for r in rows for m in r.get("contact_mechanisms") or []]
        mechanisms = {
            m["id"]: m for m in self.rpc.read("party.contact_mechanism", mech_ids, ["type", "value"])
        }
        ident_ids = [i for r in rows for i in (r.get("identifiers") or [])[:1]]
        identifiers = {i["id"]: i["code"] for i in self.rpc.read("party.identifier", ident_ids, ["code"])}
        out = []
        for r in rows:
            addr = addresses.get(first_address.get(r["id"], -1), {})
            mechs = [mechanisms[m] for m in r.get("contact_mechanisms") or [] if m in mechanisms]

            def first(kind: str, mechs: list[dict[str, Any]] = mechs) -> str | None:
                return next((m["value"] for m in mechs if m["type"] == kind), None)

            idents = r.get("identifiers") or []
            out.append(
                {
                    "code": r["code"],
                    "name": r["name"],
                    "tax_identifier": identifiers.get(idents[0]) if idents else None,
                    "phone": first("phone"),
                    "mobile": first("mobile"),
                    "email": first("email"),
                    "street": addr.get("street") or None,
                    "city": addr.get("city") or None,
                    "postal_code": addr.get("postal_code") or None,
                    "subdivision": (addr.get("subdivision.") or {}).get("name"),
                    "country": (addr.get("country.") or {}).get("code"),
                }
            )
        return out

    def _find_parties(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        rows = self.rpc.search_read(
            "party.party", [["code", "in", keys]], ["code", "addresses", "contact_mechanisms", "identifiers"]
        )
        return {r["code"]: r for r in rows}

    def _address_values(self, data: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in ("street", "city", "postal_code"):
            if name in data:
                values[name] = data[name] or None
        if data.get("country"):
            values["country"] = self._ref(self.ref.country, str(data["country"]), "country")
        if data.get("subdivision"):
            values["subdivision"] = self._ref(self.ref.subdivision, str(data["subdivision"]), "subdivision")
        return values

    def _ref(self, getter: Callable[[str, str], Any], value: str, field: str) -> Any:
        try:
            return getter(value, field)
        except UnknownReference as exc:
            raise RecordWriteRefused("unknown_reference", str(exc), exc.field) from None

    def _check_fields(self, data: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise RecordWriteRefused("unknown_field", f"{what} has no field {', '.join(unknown)}", unknown[0])

    def _identifier(self, code: Any) -> dict[str, Any]:
        return {"type": self.settings.tax_identifier_type, "code": str(code)}

    def _party_create_values(self, req: WriteRequest, key: str) -> dict[str, Any]:
        data = req.data
        self._check_fields(data, CUSTOMER_FIELDS, "customer")
        if not data.get("name"):
            raise RecordWriteRefused("required", "customer name is required", "name")
        values: dict[str, Any] = {"code": key, "name": data["name"]}
        address = self._address_values(data)
        values["addresses"] = [["create", [address]]]
        mechanisms = [
            {"type": kind, "value": str(data[kind])}
            for kind in ("phone", "mobile", "email")
            if data.get(kind)
        ]
        if mechanisms:
            values["contact_mechanisms"] = [["create", mechanisms]]
        if data.get("tax_identifier"):
            values["identifiers"] = [["create", [self._identifier(data["tax_identifier"])]]]
        return values

    def _party_update(self, req: WriteRequest, existing: dict[str, Any]) -> None:
        data = req.data
        self._check_fields(data, CUSTOMER_FIELDS, "customer")
        values: dict[str, Any] = {}
        if data.get("name"):
            values["name"] = data["name"]
        address = self._address_values(data)
        if address:
            addr_ids = existing.get("addresses") or []
            values["addresses"] = [["write", addr_ids[:1], address]] if addr_ids else [["create", [address]]]
        kinds = [k for k in ("phone", "mobile", "email") if k in data]
        if kinds:
            current = self.rpc.read(
                "party.contact_mechanism", existing.get("contact_mechanisms") or [], ["type", "value"]
            )
            ops: list[Any] = []
            for kind in kinds:
                match = next((m for m in current if m["type"] == kind), None)
                if data[kind] and match is None:
                    ops.append(["create", [{"type": kind, "value": str(data[kind])}]])
                elif data[kind] and match is not None and match["value"] != str(data[kind]):
                    ops.append(["write", [match["id"]], {"value": str(data[kind])}])
                elif not data[kind] and match is not None:
                    ops.append(["delete", [match["id"]]])
            if ops:
                values["contact_mechanisms"] = ops
        if "tax_identifier" in data:
            idents = existing.get("identifiers") or []
            code = data["tax_identifier"]
            if code and idents:
                values["identifiers"] = [["write", idents[:1], self._identifier(code)]]
            elif code:
                values["identifiers"] = [["create", [self._identifier(code)]]]
            elif idents:
                values["identifiers"] = [["delete", idents[:1]]]
        if values:
            self.rpc.write("party.party", [existing["id"]], values)

    # -- sales -----------------------------------------------------------------------------
    def _sales_data(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
            for m in self.rpc.read(
                "stock.move", move_ids, ["state", "quantity", "effective_date", "to_location.type"]
            )
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
                        "unit_price_tax_included": (price * (1 + rate)).quantize(
                            Decimal("0.01"), ROUND_HALF_UP
                        )
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

    def _find_sales(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        rows = self.rpc.search_read(
            "sale.sale",
            [["reference", "in", keys]],
            ["reference", "state", "party.code", "lines"],
            order=[["id", "ASC"]],
        )
        found: dict[str, dict[str, Any]] = {}
        for r in rows:
            found.setdefault(r["reference"], r)  # the oldest wins should a duplicate exist
        return found

    def _sale_lines(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        lines = data.get("lines")
        if not isinstance(lines, list) or not lines:
            raise RecordWriteRefused("required", "a sales order needs at least one line", "lines")
        out = []
        for n, line in enumerate(lines):
            where = f"lines[{n}]"
            if not isinstance(line, Mapping):
                raise RecordWriteRefused("invalid", f"{where} is not an object", "lines")
            self._check_fields(line, SALE_LINE_FIELDS, where)
            if not line.get("product"):
                raise RecordWriteRefused("required", f"{where}.product is required", f"{where}.product")
            product = self._ref(self.ref.product, str(line["product"]), f"{where}.product")
            quantity = _decimal(line.get("quantity"), f"{where}.quantity")
            if quantity <= 0:
                raise RecordWriteRefused("invalid", f"{where}.quantity must be positive", f"{where}.quantity")
            unit_id = product["uom"]
            if line.get("unit"):
                unit = self._ref(self.ref.unit, str(line["unit"]), f"{where}.unit")
                if unit["category"] != product["uom_category"]:
                    raise RecordWriteRefused(
                        "invalid",
                        f"{where}.unit {line['unit']!r} does not fit the product's unit category",
                        f"{where}.unit",
                    )
                unit_id = unit["id"]
            if line.get("tax_rate") is not None:
                rate = _decimal(line["tax_rate"], f"{where}.tax_rate")
                if rate != product["tax_rate"] * 100:
                    raise RecordWriteRefused(
                        "tax_mismatch",
                        f"{where}.tax_rate {rate}% differs from product {line['product']}'s "
                        f"{(product['tax_rate'] * 100).normalize()}% in Tryton",
                        f"{where}.tax_rate",
                    )
            if line.get("unit_price") is not None:
                price = _decimal(line["unit_price"], f"{where}.unit_price")
            elif line.get("unit_price_tax_included") is not None:
                gross = _decimal(line["unit_price_tax_included"], f"{where}.unit_price_tax_included")
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

    def _sale_header(self, data: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if data.get("customer_code"):
            parties = self._find_parties([str(data["customer_code"])])
            party = parties.get(str(data["customer_code"]))
            if party is None:
                raise RecordWriteRefused(
                    "unknown_reference", f"unknown customer {data['customer_code']!r}", "customer_code"
                )
            values["party"] = party["id"]
            if party.get("addresses"):
                values["invoice_address"] = values["shipment_address"] = party["addresses"][0]
        currency = data.get("currency") or self.settings.default_currency
        if currency:
            values["currency"] = self._ref(self.ref.currency, str(currency), "currency")
        term = data.get("payment_term") or self.settings.default_payment_term
        if term:
            values["payment_term"] = self._ref(self.ref.payment_term, str(term), "payment_term")
        if "sale_date" in data:
            values["sale_date"] = _date(data["sale_date"], "sale_date")
        if "description" in data:
            values["description"] = data["description"] or None
        return values

    def _sale_create_values(self, req: WriteRequest, key: str) -> dict[str, Any]:
        data = req.data
        self._check_fields(data, SALE_FIELDS, "sales order")
        if not data.get("customer_code"):
            raise RecordWriteRefused("required", "customer_code is required", "customer_code")
        values = self._sale_header(data)
        values.update(
            reference=key,
            company=self.rpc.context["company"],
            invoice_method=self.settings.sale_invoice_method,
            shipment_method=self.settings.sale_shipment_method,
            lines=[["create", self._sale_lines(data)]],
        )
        if "currency" not in values:
            values["currency"] = self._company_currency()
        return values

    def _company_currency(self) -> int:
        company = self.rpc.read("company.company", [self.rpc.context["company"]], ["currency"])
        return int(company[0]["currency"])

    def _sale_update(self, req: WriteRequest, existing: dict[str, Any]) -> None:
        data = req.data
        self._check_fields(data, SALE_FIELDS, "sales order")
        if existing["state"] != "draft":
            # Past draft the ERP owns the order: accept an unchanged re-send, refuse a change.
            if self._sale_differs(data, existing):
                raise RecordWriteRefused(
                    "locked",
                    f"sales order {existing['reference']} is {existing['state']} "
                    "in Tryton; only draft orders can be changed",
                    "state",
                )
            return
        values = self._sale_header(data)
        if "lines" in data:
            new_lines = self._sale_lines(data)
            values["lines"] = [["delete", existing.get("lines") or []], ["create", new_lines]]
        if values:
            self.rpc.write("sale.sale", [existing["id"]], values)
        self._sale_workflow([existing["id"]])

    def _sale_differs(self, data: Mapping[str, Any], existing: Mapping[str, Any]) -> bool:
        if data.get("customer_code") and data["customer_code"] != (existing.get("party.") or {}).get("code"):
            return True
        if "lines" not in data:
            return False
        current = self.rpc.read(
            "sale.line", existing.get("lines") or [], ["type", "product.code", "quantity"]
        )
        have = sorted(
            (str((ln.get("product.") or {}).get("code")), Decimal(str(ln["quantity"])))
            for ln in current
            if ln.get("type") == "line"
        )
        want = sorted(
            (str(ln.get("product")), _decimal(ln.get("quantity"), "quantity"))
            for ln in data.get("lines") or []
            if isinstance(ln, Mapping)
        )
        return have != want

    def _sale_workflow(self, ids: list[int]) -> None:
        """Quote and/or confirm draft sales as configured (all-or-nothing per call)."""
        steps = {"draft": [], "quote": ["quote"], "confirm": ["quote", "confirm"]}[
            self.settings.sale_workflow
        ]
        for step in steps:
            states = {r["id"]: r["state"] for r in self.rpc.read("sale.sale", ids, ["state"])}
            todo = [i for i in ids if states.get(i) == ("draft" if step == "quote" else "quotation")]
            if todo:
                self.rpc.button("sale.sale", step, todo)

    # -- receipts (posted customer invoices) -----------------------------------------------
    def _receipts_data(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sale_ids = sorted({s for r in rows for s in r.get("sales") or []})
        refs = {s["id"]: s["reference"] for s in self.rpc.read("sale.sale", sale_ids, ["reference"])}
        to_pay = [m for r in rows for m in r.get("lines_to_pay") or []]
        paid = [m for r in rows for m in r.get("payment_lines") or []]
        lines = {
            m["id"]: m for m in self.rpc.read("account.move.line", to_pay + paid, ["maturity_date", "date"])
        }
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
            if r["state"] == "paid":
                to_pay_amount = Decimal(0)
            amount_paid = total - to_pay_amount
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
                    "status": _invoice_status(to_pay_amount, amount_paid, due, today),
                }
            )
        return out

    def _find_invoices(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        rows = self.rpc.search_read(
            "account.invoice", [["type", "=", "out"], ["number", "in", keys]], ["number"]
        )
        return {r["number"]: r for r in rows}

    # -- account status per customer -------------------------------------------------------
    def _read_account_status(
        self, since: Cursor | None, until: Cursor | None, page_size: int
    ) -> Iterator[Page]:
        """One record per customer whose invoices changed, or fell due, after the cursor.

        A customer's `updated_at` is the latest change among its posted/paid invoices, or the
        start of the day after an open invoice's due date (when it became overdue, which no
        write records), whichever is later but not in the future.
        """
        now = self.now()
        base = [["type", "=", "out"], ["state", "in", ["posted", "paid"]]]
        stamps: dict[int, dt.datetime] = {}
        start = None if since is None else Cursor(since.updated_at)  # whole timestamps: re-filter below
        for rows in self._changed("account.invoice", base, ["party"], start, None, 500):
            for r in rows:
                stamps[r["party"]] = max(stamps.get(r["party"], _aware(r[_LM])), _aware(r[_LM]))
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
            (ts, pid) for pid, ts in stamps.items() if _after(since, ts, pid) and _within(until, ts, pid)
        )
        if not ordered:
            yield Page([], None)
            return
        for offset in range(0, len(ordered), page_size):
            chunk = ordered[offset : offset + page_size]
            data = self._status_data([pid for _, pid in chunk])
            records = [Record(str(pid), ts, data[pid]) for ts, pid in chunk]
            yield Page(records, records[-1].cursor())

    def _status_data(self, party_ids: list[int]) -> dict[int, dict[str, Any]]:
        parties = {p["id"]: p for p in self.rpc.read("party.party", party_ids, ["code", "name"])}
        invoices = self.rpc.search_read(
            "account.invoice",
            [["type", "=", "out"], ["state", "in", ["posted", "paid"]], ["party", "in", party_ids]],
            [
                "party",
                "number",
                "sales",
                "currency.code",
                "invoice_date",
                "total_amount",
                "amount_to_pay",
                "state",
                "lines_to_pay",
                "payment_lines",
                _LM,
            ],
        )
        by_party: dict[int, list[dict[str, Any]]] = {pid: [] for pid in party_ids}
        for inv, data in zip(invoices, self._receipts_data(invoices), strict=True):
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

    # -- generic write ---------------------------------------------------------------------
    def _write(
        self,
        batch: Sequence[WriteRequest],
        key_of: Callable[[WriteRequest], str],
        find: Callable[[list[str]], dict[str, dict[str, Any]]],
        create_values: Callable[[WriteRequest, str], dict[str, Any]],
        update: Callable[[WriteRequest, dict[str, Any]], None],
        model: str,
        after_create: Callable[[list[int]], None] | None,
    ) -> list[WriteResult]:
        results: dict[int, WriteResult] = {}
        keys: dict[int, str] = {}
        for n, req in enumerate(batch):
            try:
                keys[n] = key_of(req)
            except RecordWriteRefused as exc:
                results[n] = WriteResult(req.source_id, error=exc.error)
        existing = find(sorted(set(keys.values())))
        to_create: dict[int, dict[str, Any]] = {}
        claimed: set[str] = set()
        for n, key in keys.items():
            req = batch[n]
            if key in existing:
                results[n] = self._one(req, partial(self._update, req, existing[key], update))
                continue
            if key in claimed:  # two requests for one new key in a batch: the first creates it
                results[n] = WriteResult(
                    req.source_id,
                    error=RecordError(
                        "duplicate_key", f"key {key!r} appears twice in one batch", transient=True
                    ),
                )
                continue
            try:
                to_create[n] = create_values(req, key)
                claimed.add(key)
            except RecordWriteRefused as exc:
                results[n] = WriteResult(req.source_id, error=exc.error)
            except TrytonUserError as exc:
                results[n] = WriteResult(req.source_id, error=_user_failure(exc).error)
        if to_create:
            results.update(self._create_all(batch, keys, to_create, model, find, after_create))
        return [results[n] for n in range(len(batch))]

    def _update(
        self,
        req: WriteRequest,
        existing: dict[str, Any],
        update: Callable[[WriteRequest, dict[str, Any]], None],
    ) -> WriteResult:
        update(req, existing)
        return WriteResult(req.source_id, str(existing["id"]), WriteAction.UPDATED)

    def _one(self, req: WriteRequest, fn: Callable[[], WriteResult]) -> WriteResult:
        try:
            return fn()
        except RecordWriteRefused as exc:
            return WriteResult(req.source_id, error=exc.error)
        except TrytonUserError as exc:
            return WriteResult(req.source_id, error=_user_failure(exc).error)

    def _create_all(
        self,
        batch: Sequence[WriteRequest],
        keys: Mapping[int, str],
        values: dict[int, dict[str, Any]],
        model: str,
        find: Callable[[list[str]], dict[str, dict[str, Any]]],
        after_create: Callable[[list[int]], None] | None,
    ) -> dict[int, WriteResult]:
        order = sorted(values)
        created: dict[int, int] = {}
        failed: dict[int, RecordError] = {}
        try:
            ids = self.rpc.create(model, [values[n] for n in order])
            created = dict(zip(order, ids, strict=True))
        except TrytonUserError:
            # All or nothing: find the bad record(s) by creating one at a time.
            for n in order:
                try:
                    created[n] = self._create_one(model, values[n], keys[n], find)
                except TrytonUserError as exc:
                    failed[n] = _user_failure(exc).error
                except TransientError as exc:
                    failed[n] = RecordError("transient", str(exc), transient=True)
        except TransientError:
            # The list may have been applied before the answer was lost: look before creating again.
            found = find([keys[n] for n in order])
            for n in order:
                if keys[n] in found:
                    created[n] = int(found[keys[n]]["id"])
                    continue
                try:
                    created[n] = self._create_one(model, values[n], keys[n], find)
                except TrytonUserError as exc:
                    failed[n] = _user_failure(exc).error
                except TransientError as exc:
                    failed[n] = RecordError("transient", str(exc), transient=True)
        if after_create is not None and created:
            failed.update(self._after_create(after_create, created))
        out: dict[int, WriteResult] = {}
        for n in order:
            req = batch[n]
            if n in failed:
                out[n] = WriteResult(
                    req.source_id, str(created[n]) if n in created else None, error=failed[n]
                )
            else:
                out[n] = WriteResult(req.source_id, str(created[n]), WriteAction.CREATED)
        return out

    def _create_one(
        self,
        model: str,
        values: dict[str, Any],
        key: str,
        find: Callable[[list[str]], dict[str, dict[str, Any]]],
    ) -> int:
        try:
            return self.rpc.create(model, [values])[0]
        except TransientError:
            found = find([key])
            if key in found:
                return int(found[key]["id"])
            raise

    def _after_create(
        self, step: Callable[[list[int]], None], created: dict[int, int]
    ) -> dict[int, RecordError]:
        """Run a workflow step on the new records; a refusal is isolated like a create."""
        try:
            step(list(created.values()))
            return {}
        except TrytonUserError:
            failed: dict[int, RecordError] = {}
            for n, record_id in created.items():
                try:
                    step([record_id])
                except TrytonUserError as exc:
                    failed[n] = RecordError(
                        exc.kind, f"created, but {self.settings.sale_workflow} failed: {exc.detail}", "state"
                    )
            return failed


def _invoice_status(to_pay: Decimal, paid: Decimal, due: dt.date | None, today: dt.date) -> str:
    if to_pay <= 0:
        return "paid"
    if due is not None and due < today:
        return "overdue"
    if paid > 0:
        return "partly_paid"
    return "open"
