"""The three business processes with a REAL Tryton 8 as the ERP (`config/processes_tryton.yaml`).

One trytond for the module (copied from the template DB) and one Jiandaoyun sandbox; the hub runs
in this process. The tests share the ERP and the hub's store, and each one works on its own
customer, so they read in order: (a) won opportunity -> party, (b) shipment -> CRM order,
(c) invoice payments -> CRM account status. After each, everything runs again without a write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from erphub import sandbox as sandboxes
from erphub.config.loader import load_config
from erphub.connectors.tryton import TrytonConnector
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from erphub.sandbox.common import SandboxApp
from tests.contract.harnesses.tryton import TrytonHarness, make_harness
from tests.integration.test_processes import PIPELINES, WRITES, config_copy, crm_customer

pytestmark = pytest.mark.tryton


@dataclass
class TrytonRig:
    hub: Hub
    crm: SandboxApp
    tryton: TrytonHarness

    def run(self, name: str) -> dict[str, int]:
        info = run_pipeline(self.hub.pipeline(name), self.hub.store)
        assert info.status == "success", info.error
        return info.counts

    def assert_settled(self) -> None:
        for name in PIPELINES:
            counts = self.run(name)
            assert all(counts[k] == 0 for k in WRITES), (name, counts)

    def crm_one(self, entry: str, field: str, value: str) -> dict[str, Any]:
        rows = self.crm.state.find(entry, field, value)
        assert len(rows) == 1, (entry, value, len(rows))
        return rows[0]

    @property
    def erp(self) -> TrytonConnector:
        conn = self.hub.connector("erp")
        assert isinstance(conn, TrytonConnector)
        return conn

    def party(self, code: str) -> dict[str, Any] | None:
        found = self.erp.lookup("customer", [code])
        if code not in found:
            return None
        rows = self.tryton.admin_call("model.party.party.read", [[int(found[code])], ["code", "name", "rec_name"]])
        return dict(rows[0])

    def sale_id(self, reference: str) -> int:
        return int(self.erp.lookup("sales_order", [reference])[reference])

    def ship(self, reference: str) -> None:
        [sale] = self.tryton.admin_call("model.sale.sale.read", [[self.sale_id(reference)], ["shipments"]])
        for step in ("assign_try", "pick", "pack", "do"):
            self.tryton.admin_call(f"model.stock.shipment.out.{step}", [sale["shipments"]])

    def post_invoice(self, reference: str) -> int:
        [sale] = self.tryton.admin_call("model.sale.sale.read", [[self.sale_id(reference)], ["invoices"]])
        [invoice] = sale["invoices"]
        self.tryton.admin_call("model.account.invoice.post", [[invoice]])
        return int(invoice)

    def pay(self, invoice: int, amount: Decimal) -> None:
        """The account.invoice.pay wizard over JSON-RPC, as a cashier would run it."""
        wctx = {"active_model": "account.invoice", "active_id": invoice, "active_ids": [invoice]}
        wizard = "wizard.account.invoice.pay"
        call = self.tryton.admin_call
        sid = call(f"{wizard}.create", [])[0]
        view = call(f"{wizard}.execute", [sid, {}, "start"], context=wctx)
        defaults = {k: v for k, v in view["view"]["defaults"].items() if not k.endswith(".")}
        form = {**defaults, "payment_method": self.tryton.server.meta["payment_method"], "amount": amount,
                "date": dt.date.today()}
        result = call(f"{wizard}.execute", [sid, {"start": form}, "choice"], context=wctx)
        if result.get("view", {}).get("state") == "ask":  # partial payment: keep the rest open
            ask = {k: v for k, v in result["view"]["defaults"].items() if not k.endswith(".")}
            ask["type"] = "partial"
            call(f"{wizard}.execute", [sid, {"start": form, "ask": ask}, "pay"], context=wctx)
        call(f"{wizard}.delete", [sid], context=wctx)

    def crm_order(self, order_no: str, customer: str, lines: list[tuple[str, int, float]]) -> None:
        self.crm.state.insert_plain("sales_order_form", {
            "order_no": order_no, "customer_code": customer, "order_date": "2026-03-01T02:00:00.000Z",
            "currency": "CNY", "salesperson": "S001", "remark": "", "status": "待发货", "shipped_date": None,
            "lines": [{"sku": sku, "product_name": sku, "qty": qty, "unit": "个", "price": price, "tax_rate": 13,
                       "amount": qty * price, "shipped_qty": None} for sku, qty, price in lines]})


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonRig]:
    tmp = tmp_path_factory.mktemp("processes-tryton")
    crm = sandboxes.create("jiandaoyun", seed_data=False)
    with make_harness() as harness, crm.serve() as crm_server:
        srv = harness.server
        environ = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_TRYTON_URL": srv.url,
                   "ERPHUB_TRYTON_DB": srv.database, "ERPHUB_TRYTON_LOGIN": srv.login,
                   "ERPHUB_TRYTON_PASSWORD": srv.password}
        hub = Hub(load_config(config_copy(tmp, "processes_tryton.yaml"), environ=environ))
        try:
            yield TrytonRig(hub, crm, harness)
        finally:
            hub.close()


def test_a_won_opportunity_creates_the_party_and_the_crm_sees_its_code(rig: TrytonRig) -> None:
    code = "CUS-T00001"
    rig.crm.state.insert_plain("customer_form", crm_customer(code, "杭州西溪数据服务有限公司"))
    rig.crm.state.insert_plain("opportunity_form", {
        "opp_no": "OPP-T-0001", "customer_code": code, "customer_name": "杭州西溪数据服务有限公司",
        "credit_code": "91350100M000100Y43", "phone": "0571-87654321",
        "address": {"province": "浙江省", "city": "杭州市", "district": "西湖区", "detail": "文三路 1 号"},
        "stage": "赢单", "amount": 80000, "currency": "CNY", "salesperson": "S002", "erp_customer_no": ""})
    rig.crm.state.insert_plain("opportunity_form", {
        "opp_no": "OPP-T-0002", "customer_code": "CUS-T00002", "customer_name": "还在谈", "stage": "报价",
        "erp_customer_no": ""})

    counts = rig.run("opportunity_to_erp_customer")
    assert counts == {"read": 2, "created": 1, "updated": 0, "unchanged": 0, "skipped": 1, "dead_lettered": 0}
    party = rig.party(code)
    assert party is not None and party["name"] == "杭州西溪数据服务有限公司"
    assert rig.party("CUS-T00002") is None
    assert rig.crm_one("opportunity_form", "opp_no", "OPP-T-0001")["erp_customer_no"] == code

    formal = rig.run("opportunity_to_crm_customer")
    assert formal["updated"] == 1 and formal["created"] == 0
    customer = rig.crm_one("customer_form", "customer_code", code)
    assert customer["status"] == "正式" and customer["erp_customer_no"] == code
    assert customer["customer_name"] == "杭州西溪数据服务有限公司"
    # Now formal, its master data flows on through the customer pipeline (the CRM owns it).
    master = rig.run("crm_customers_to_erp")
    assert master["updated"] == 1 and master["dead_lettered"] == 0
    # The CRM's province (广东省) reaches the party's address as Tryton's own subdivision record.
    [address] = rig.tryton.admin_call("model.party.address.search_read", [
        [["party.code", "=", code]], 0, None, None, ["subdivision.code", "subdivision.name"]])
    assert address["subdivision."] == {"id": address["subdivision."]["id"], "code": "CN-GD", "name": "广东省"}
    rig.assert_settled()


def test_b_a_done_shipment_sets_the_crm_order_status_date_and_quantity(rig: TrytonRig) -> None:
    code = "CUS-T00003"
    rig.crm.state.insert_plain("customer_form", crm_customer(code, "成都锦江机电有限公司", status="正式"))
    assert rig.run("crm_customers_to_erp")["created"] == 1
    rig.crm_order("SO-2026-T0003", code, [("P-1006", 3, 113.0), ("P-1007", 2, 56.5)])
    assert rig.run("crm_orders_to_erp")["created"] == 1
    lines_before = rig.crm_one("sales_order_form", "order_no", "SO-2026-T0003")["lines"]
    waiting = rig.run("erp_shipments_to_crm")
    assert waiting["skipped"] >= 1 and waiting["updated"] == 0  # confirmed, shipment waiting
    rig.assert_settled()

    rig.ship("SO-2026-T0003")
    shipped = rig.run("erp_shipments_to_crm")
    assert shipped == {"read": 1, "created": 0, "updated": 1, "unchanged": 0, "skipped": 0, "dead_lettered": 0}
    order = rig.crm_one("sales_order_form", "order_no", "SO-2026-T0003")
    assert order["status"] == "已发货" and order["shipped_qty"] == 5
    [sale] = [r for p in rig.erp.read_changes("sales_order", None, page_size=100) for r in p.records
              if r.data["reference"] == "SO-2026-T0003"]
    day: dt.date = sale.data["shipped_date"]
    assert order["shipped_date"] == f"{day - dt.timedelta(days=1):%Y-%m-%d}T16:00:00.000Z"  # Shanghai midnight
    # Each CRM line gets its shipped quantity; everything else of the line (and its row id) stays.
    assert [line["shipped_qty"] for line in order["lines"]] == [3, 2]
    assert [{k: v for k, v in line.items() if k != "shipped_qty"} for line in order["lines"]] == [
        {k: v for k, v in line.items() if k != "shipped_qty"} for line in lines_before]
    assert order["erp_order_no"] == sale.data["number"] and sale.data["number"]  # Tryton's own number
    rig.assert_settled()


def test_b_a_sale_cancelled_in_tryton_cancels_the_crm_order(rig: TrytonRig) -> None:
    code = "CUS-T00009"
    rig.crm.state.insert_plain("customer_form", crm_customer(code, "南京玄武仪表有限公司", status="正式"))
    assert rig.run("crm_customers_to_erp")["created"] == 1
    rig.crm_order("SO-2026-T0009", code, [("P-1006", 1, 113.0)])
    # This order is only quoted in Tryton (not yet confirmed), then the sales office cancels it there.
    rig.erp.settings.sale_workflow = "quote"
    try:
        assert rig.run("crm_orders_to_erp")["created"] == 1
    finally:
        rig.erp.settings.sale_workflow = "confirm"
    sale_id = rig.sale_id("SO-2026-T0009")
    rig.tryton.admin_call("model.sale.sale.cancel", [[sale_id]])
    rig.run("erp_shipments_to_crm")
    order = rig.crm_one("sales_order_form", "order_no", "SO-2026-T0009")
    [sale] = rig.tryton.admin_call("model.sale.sale.read", [[sale_id], ["state", "number"]])
    assert sale["state"] == "cancelled"
    assert order["status"] == "已取消" and order["erp_order_no"] == sale["number"]


def test_c_invoice_payments_set_the_crm_account_status_and_balance(rig: TrytonRig) -> None:
    code = "CUS-T00004"
    rig.crm.state.insert_plain("customer_form", crm_customer(code, "武汉光谷仪器有限公司", status="正式"))
    assert rig.run("crm_customers_to_erp")["created"] == 1
    rig.crm_order("SO-2026-T0004", code, [("P-1008", 2, 113.0)])  # 226.00 tax included
    assert rig.run("crm_orders_to_erp")["created"] == 1
    rig.assert_settled()  # a draft invoice is no receivable yet

    def account() -> tuple[str, Any]:
        row = rig.crm_one("customer_form", "customer_code", code)
        return row["account_status"], row["outstanding_balance"]

    invoice = rig.post_invoice("SO-2026-T0004")
    posted = rig.run("erp_accounts_to_crm")
    assert posted == {"read": 1, "created": 0, "updated": 1, "unchanged": 0, "skipped": 0, "dead_lettered": 0}
    assert account() == ("open", 226)  # posted, due today (payment term Direct), nothing paid: owed, not due
    rig.assert_settled()

    rig.pay(invoice, Decimal("100"))
    assert rig.run("erp_accounts_to_crm")["updated"] == 1
    assert account() == ("partly_paid", 126)
    rig.assert_settled()

    rig.pay(invoice, Decimal("126"))
    assert rig.run("erp_accounts_to_crm")["updated"] == 1
    assert account() == ("paid", 0)
    customer = rig.crm_one("customer_form", "customer_code", code)
    assert customer["status"] == "正式" and customer["customer_name"] == "武汉光谷仪器有限公司"
    rig.assert_settled()

    # A second invoice, unpaid; two days later, with nothing written in between, it is overdue.
    # (The ERP clock moves ahead, and with it the pipeline's cursor: so this comes last in the module.)
    rig.crm_order("SO-2026-T0005", code, [("P-1009", 1, 56.5)])
    assert rig.run("crm_orders_to_erp")["created"] == 1
    rig.post_invoice("SO-2026-T0005")
    assert rig.run("erp_accounts_to_crm")["updated"] == 1
    assert account() == ("open", Decimal("56.5"))
    rig.erp.now = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    try:
        assert rig.run("erp_accounts_to_crm")["updated"] == 1
        assert account() == ("overdue", Decimal("56.5"))
        rig.assert_settled()
    finally:
        rig.erp.now = lambda: dt.datetime.now(dt.UTC)
