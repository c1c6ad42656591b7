"""Delivered means applied, against a REAL Tryton 8: a change to a quotation goes through Tryton's
workflow (back to draft, rewritten, quoted again), a change to a confirmed sale is refused `locked`,
an identical re-send is `unchanged`; `--full` compares with the sale Tryton holds now; a cancelled
invoice is seen (incrementally and by `--full`) and its customer's account follows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.connectors.tryton import TrytonConnector
from erphub.core.records import Cursor, WriteAction, WriteRequest
from erphub.engine import Pipeline, run_pipeline
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.store import Store
from tests.contract.harnesses.tryton import TrytonHarness, make_harness

pytestmark = pytest.mark.tryton


@pytest.fixture(scope="module")
def harness() -> Iterator[TrytonHarness]:
    with make_harness() as h:
        yield h


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def connector(harness: TrytonHarness, workflow: str) -> TrytonConnector:
    conn = harness.connector(sale_workflow=workflow)
    assert isinstance(conn, TrytonConnector)
    return conn


def customer(conn: TrytonConnector, harness: TrytonHarness) -> str:
    code = uid("CUS")
    [res] = conn.write("customer", [harness.write_request(1, key=code)])
    assert res.ok, res.error
    return code


def sale(key: str, code: str, price: str, remark: str, target_id: str | None = None, quantity: int = 2) -> WriteRequest:
    data = {"reference": key, "customer_code": code, "sale_date": "2026-03-02", "currency": "CNY",
            "description": remark, "lines": [{"product": "1.01.001", "quantity": quantity, "unit_price": price}]}
    return WriteRequest(source_id=f"src-{key}", key=key, target_id=target_id, data=data, idempotency_key=key)


def in_tryton(harness: TrytonHarness, sale_id: int) -> tuple[str, str | None, list[Decimal]]:
    [row] = harness.admin_call("model.sale.sale.read", [[sale_id], ["state", "description", "lines"]])
    lines = harness.admin_call("model.sale.line.read", [row["lines"], ["unit_price"]])
    return row["state"], row["description"], [Decimal(str(ln["unit_price"])) for ln in lines]


def test_a_quotation_change_is_applied_through_the_workflow(harness: TrytonHarness) -> None:
    conn = connector(harness, "quote")
    code, key = customer(conn, harness), uid("SO")
    [created] = conn.write("sales_order", [sale(key, code, "100", "first")])
    assert created.ok, created.error
    sale_id = int(created.target_id or 0)
    assert in_tryton(harness, sale_id) == ("quotation", "first", [Decimal("100")])

    [changed] = conn.write("sales_order", [sale(key, code, "120", "price agreed", created.target_id)])
    assert changed.ok and changed.action is WriteAction.UPDATED, changed.error
    assert in_tryton(harness, sale_id) == ("quotation", "price agreed", [Decimal("120")])
    [same] = conn.write("sales_order", [sale(key, code, "120", "price agreed", created.target_id)])
    assert same.ok and same.action is WriteAction.UNCHANGED
    conn.close()


def test_a_confirmed_sale_change_is_locked_never_delivered(harness: TrytonHarness) -> None:
    conn = connector(harness, "confirm")
    code, key = customer(conn, harness), uid("SO")
    [created] = conn.write("sales_order", [sale(key, code, "100", "first")])
    assert created.ok, created.error
    [changed] = conn.write("sales_order", [sale(key, code, "120", "price agreed", created.target_id)])
    assert changed.error is not None and changed.error.code == "locked"
    assert "description" in changed.error.message and "lines" in changed.error.message
    assert in_tryton(harness, int(created.target_id or 0)) == ("processing", "first", [Decimal("100")])
    conn.close()


class SalePlan:
    key_field = "reference"
    owned_fields = None

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped:
        return Mapped({"reference": record["no"], "customer_code": record["customer"], "sale_date": "2026-03-02",
                       "currency": "CNY", "description": record["remark"],
                       "lines": [{"product": "1.01.001", "quantity": 2, "unit_price": record["price"]}]},
                      key=record["no"])


def test_full_compares_with_the_sale_tryton_holds_now(harness: TrytonHarness, sqlite_store: Store) -> None:
    erp = connector(harness, "quote")
    code, key = customer(erp, harness), uid("SO")
    tag = uid("full")
    crm_system = memory_system(f"crm-{tag}")
    crm_system.put("order", {"no": key, "customer": code, "remark": "from the CRM", "price": "100"})
    crm = MemoryConnector(MemorySettings(system=f"crm-{tag}", entities={"order": "no"}), SystemContext(name="crm"))
    pipeline = Pipeline(name="orders", source_system="crm", source_entity="order", source=crm,
                        target_system="erp", target_entity="sales_order", target=erp, plan=SalePlan())
    assert run_pipeline(pipeline, sqlite_store).counts["created"] == 1
    sale_id = int(erp.lookup("sales_order", [key])[key])
    # Someone edits the quotation in Tryton (as the client does: back to draft, change, quote).
    harness.admin_call("model.sale.sale.draft", [[sale_id]])
    harness.admin_call("model.sale.sale.write", [[sale_id], {"description": "edited in Tryton"}])
    harness.admin_call("model.sale.sale.quote", [[sale_id]])

    assert run_pipeline(pipeline, sqlite_store).counts["read"] == 0  # nothing changed in the CRM
    full = run_pipeline(pipeline, sqlite_store, full=True)
    assert (full.counts["updated"], full.counts["unchanged"]) == (1, 0)
    assert in_tryton(harness, sale_id) == ("quotation", "from the CRM", [Decimal("100")])
    again = run_pipeline(pipeline, sqlite_store, full=True)
    assert (again.counts["updated"], again.counts["unchanged"]) == (0, 1)
    erp.close()


def test_a_cancelled_invoice_is_seen_and_the_account_follows(harness: TrytonHarness) -> None:
    conn = connector(harness, "confirm")
    code, key = customer(conn, harness), uid("SO")
    [created] = conn.write("sales_order", [sale(key, code, "100", "to invoice")])
    assert created.ok, created.error
    [row] = harness.admin_call("model.sale.sale.read", [[int(created.target_id or 0)], ["invoices", "company"]])
    [invoice] = row["invoices"]
    harness.admin_call("model.account.invoice.post", [[invoice]])
    [number] = [r["number"] for r in harness.admin_call("model.account.invoice.read", [[invoice], ["number"]])]

    def accounts(since: Cursor | None) -> dict[str, dict[str, Any]]:
        return {r.data["customer_code"]: r.data for p in conn.read_changes("account_status", since) for r in p.records}

    def receipts(since: Cursor | None) -> dict[str, dict[str, Any]]:
        return {r.data["number"]: r.data for p in conn.read_changes("receipt", since) for r in p.records}

    assert accounts(None)[code]["outstanding_balance"] > 0
    high = max((r.cursor() for p in conn.read_changes("account_status", None) for r in p.records), key=Cursor.key)

    # The company lets its customer invoices be cancelled; finance cancels this one.
    harness.admin_call("model.company.company.write", [[row["company"]], {"cancel_invoice_out": True}])
    harness.admin_call("model.account.invoice.cancel", [[invoice]])

    after = accounts(high)  # the next incremental read
    assert code in after and after[code]["outstanding_balance"] == 0 and after[code]["open_invoices"] == 0
    assert accounts(None)[code]["outstanding_balance"] == 0  # and a full read
    assert receipts(None)[number]["status"] == "cancelled"
    conn.close()


class ShippedPlan:
    key_field = "order_no"
    owned_fields = None

    def __init__(self, reference: str) -> None:
        self.reference = reference

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped:
        if record["reference"] != self.reference:
            return Skipped("another test's sale")
        shipped = sum((line["shipped_quantity"] for line in record["lines"]), Decimal(0))
        return Mapped({"order_no": record["reference"], "shipped_qty": str(shipped)}, key=record["reference"])


def ship_part(harness: TrytonHarness, sale_id: int, quantity: float) -> None:
    """Ship part of the waiting shipment (the picker takes less), as a warehouse would."""
    [row] = harness.admin_call("model.sale.sale.read", [[sale_id], ["shipments"]])
    shipments = harness.admin_call("model.stock.shipment.out.read", [row["shipments"], ["state", "inventory_moves"]])
    [waiting] = [s for s in shipments if s["state"] in ("draft", "waiting")]  # the rest waits as a backorder
    harness.admin_call("model.stock.move.write", [waiting["inventory_moves"], {"quantity": quantity}])
    steps = ("wait", "assign_try", "pick", "pack", "do") if waiting["state"] == "draft" else (
        "assign_try", "pick", "pack", "do")
    for step in steps:
        harness.admin_call(f"model.stock.shipment.out.{step}", [[waiting["id"]]])


def test_a_second_partial_shipment_reaches_the_target(harness: TrytonHarness, sqlite_store: Store) -> None:
    erp = connector(harness, "confirm")
    code, key = customer(erp, harness), uid("SO")
    [created] = erp.write("sales_order", [sale(key, code, "10", "ship in parts", quantity=10)])
    assert created.ok, created.error
    sale_id = int(created.target_id or 0)
    ship_part(harness, sale_id, 4)
    # That was two hours ago: the sale and its moves carry that time (far behind any overlap window).
    [row] = harness.admin_call("model.sale.sale.read", [[sale_id], ["lines"]])
    lines = harness.admin_call("model.sale.line.read", [row["lines"], ["moves"]])
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    harness.set_timestamps("sale_sale", [sale_id], two_hours_ago)
    harness.set_timestamps("stock_move", [m for ln in lines for m in ln["moves"]], two_hours_ago)
    # Other sales were changed since: the cursor passes this one by far more than the window.
    [other] = erp.write("sales_order", [sale(uid("SO"), code, "5", "another order")])
    assert other.ok, other.error

    tag = uid("ship")
    target_system = memory_system(f"crm-{tag}")
    target = MemoryConnector(MemorySettings(system=f"crm-{tag}", entities={"order": "order_no"}),
                             SystemContext(name="crm"))
    pipeline = Pipeline(name="shipments", source_system="erp", source_entity="sales_order", source=erp,
                        target_system="crm", target_entity="order", target=target, plan=ShippedPlan(key),
                        lag_s=erp.read_lag_s)
    assert run_pipeline(pipeline, sqlite_store).status == "success"
    assert [r.data["shipped_qty"] for r in target_system.all("order")] == ["4.0"]

    # Now 3 more leave the warehouse: the sale stays "partially shipped", so Tryton does not write it.
    ship_part(harness, sale_id, 3)
    assert run_pipeline(pipeline, sqlite_store).status == "success"
    assert [r.data["shipped_qty"] for r in target_system.all("order")] == ["7.0"]
    erp.close()
