"""The seed's three business processes, end to end, over the Jiandaoyun and Kingdee sandboxes on loopback.

`config/processes.yaml` as shipped (copied with absolute paths), the hub in this process, the
sandboxes served over HTTP. Each test triggers a process on one side, runs its pipelines, checks
the other side changed exactly as expected, and runs everything again: no writes (no ping-pong).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from erphub import sandbox as sandboxes
from erphub.config.loader import load_config
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from erphub.sandbox.common import SandboxApp
from erphub.sandbox.kingdee.store import shanghai_now

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ("opportunity_to_erp_customer", "opportunity_to_crm_customer", "crm_customers_to_erp", "crm_orders_to_erp",
             "erp_shipments_to_crm", "erp_accounts_to_crm")
WRITES = ("created", "updated", "dead_lettered")
CODE = "CUS-000100"


def config_copy(tmp_path: Path, name: str) -> Path:
    text = (ROOT / "config" / name).read_text(encoding="utf-8")
    text = text.replace("../mappings/", f"{ROOT}/mappings/").replace("[demo.env]", f"[{ROOT}/config/demo.env]")
    text = text.replace("sqlite:///../.erphub/processes.db", f"sqlite:///{tmp_path}/state.db")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Rig:
    hub: Hub
    crm: SandboxApp
    erp: SandboxApp

    # -- running --------------------------------------------------------------------------------
    def run(self, name: str) -> dict[str, int]:
        info = run_pipeline(self.hub.pipeline(name), self.hub.store)
        assert info.status == "success", info.error
        return info.counts

    def run_all(self) -> dict[str, dict[str, int]]:
        return {name: self.run(name) for name in PIPELINES}

    def assert_settled(self) -> None:
        """Everything run again: reads, but not one write anywhere."""
        for name, counts in self.run_all().items():
            assert all(counts[k] == 0 for k in WRITES), (name, counts)

    # -- the CRM side ---------------------------------------------------------------------------
    def crm_one(self, entry: str, field: str, value: str) -> dict[str, Any]:
        rows = self.crm.state.find(entry, field, value)
        assert len(rows) == 1, (entry, value, len(rows))
        return rows[0]

    def crm_edit(self, entry: str, field: str, value: str, changes: dict[str, Any]) -> None:
        state = self.crm.state
        state.update(state.forms[entry], self.crm_one(entry, field, value)["_id"], changes)

    # -- the ERP side ---------------------------------------------------------------------------
    def erp_doc(self, form_id: str, number: str) -> dict[str, Any] | None:
        store = self.erp.state.store
        doc = store.by_number(form_id, number)
        return None if doc is None else store.to_model(form_id, doc)

    def erp_insert(self, form_id: str, model: dict[str, Any], status: str = "C") -> None:
        self.erp.state.store.insert(form_id, model, status=status)


def crm_customer(code: str, name: str, status: str = "潜在") -> dict[str, Any]:
    return {"customer_code": code, "customer_name": name, "short_name": name[:4], "credit_code": "91350100M000100Y43",
            "phone": "13812345678", "contact_name": "王经理", "email": "wang@example.com",
            "address": {"province": "广东省", "city": "深圳市", "district": "南山区", "detail": "科技园1号"},
            "customer_group": "KA", "salesperson": "S001", "currency": "CNY", "status": status,
            "erp_customer_no": "", "account_status": "none", "outstanding_balance": 0}


def erp_customer(code: str, name: str) -> dict[str, Any]:
    return {"FNumber": code, "FName": name, "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"},
            "FTRADINGCURRID": {"FNumber": "PRE001"}, "FGroup": {"FNumber": "KA"}, "FSELLER": {"FNumber": "S001"}}


def erp_order(number: str, customer: str, day: date, lines: list[tuple[str, int, float]]) -> dict[str, Any]:
    return {"FBillNo": number, "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": day.isoformat(),
            "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": customer}, "FSalerId": {"FNumber": "S001"},
            "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
            "FSaleOrderEntry": [{"FMaterialId": {"FNumber": m}, "FUnitID": {"FNumber": "Pcs"}, "FQty": q,
                                 "FTaxPrice": amount / q, "FEntryTaxRate": 13, "FAllAmount": amount}
                                for m, q, amount in lines]}


def outstock(order_no: str, customer: str, day: date, lines: list[tuple[str, int]]) -> dict[str, Any]:
    return {"FBillTypeID": {"FNUMBER": "XSCKD01_SYS"}, "FDate": day.isoformat(), "FSaleOrgId": {"FNumber": "100"},
            "FStockOrgId": {"FNumber": "100"}, "FCustomerID": {"FNumber": customer},
            "FEntity": [{"FMaterialID": {"FNumber": m}, "FUnitID": {"FNumber": "Pcs"}, "FRealQty": q,
                         "FSoorDerno": order_no} for m, q in lines]}


def receipt(customer: str, day: date, amount: float, order_no: str = "") -> dict[str, Any]:
    return {"FBillTypeID": {"FNUMBER": "SKDLX01_SYS"}, "FDATE": day.isoformat(), "FCONTACTUNITTYPE": "BD_Customer",
            "FCONTACTUNIT": {"FNumber": customer}, "FPAYUNITTYPE": "BD_Customer", "FPAYUNIT": {"FNumber": customer},
            "FCURRENCYID": {"FNumber": "PRE001"}, "FPAYORGID": {"FNumber": "100"}, "FSETTLECUR": {"FNUMBER": "PRE001"},
            "FRECEIVEBILLENTRY": [{"FSETTLETYPEID": {"FNumber": "JSFS04_SYS"}, "FPURPOSEID": {"FNumber": "SFKYT01_SYS"},
                                   "FRECTOTALAMOUNTFOR": amount, "FSALEORDERNO": order_no}]}


def _rig(tmp_path: Path, **erp_options: Any) -> Iterator[Rig]:
    crm = sandboxes.create("jiandaoyun", seed_data=erp_options.pop("crm_seed", False))
    erp = sandboxes.create("kingdee", **erp_options)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        environ = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        hub = Hub(load_config(config_copy(tmp_path, "processes.yaml"), environ=environ))
        try:
            yield Rig(hub, crm, erp)
        finally:
            hub.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, seed_customers=0, seed_receipts=0)


def test_a_won_opportunity_creates_the_erp_customer_and_both_sides_see_the_number(rig: Rig) -> None:
    rig.crm.state.insert_plain("customer_form", crm_customer(CODE, "深圳市前海云帆科技有限公司"))
    rig.crm.state.insert_plain("opportunity_form", {
        "opp_no": "OPP-2026-0100", "customer_code": CODE, "customer_name": "深圳市前海云帆科技有限公司",
        "credit_code": "91350100M000100Y43", "phone": "+86 138 1234 5678",
        "address": {"province": "广东省", "city": "深圳市", "district": "南山区", "detail": "科技园1号"},
        "stage": "报价", "amount": 120000, "currency": "CNY", "salesperson": "S001", "erp_customer_no": ""})
    # A won opportunity of a customer the ERP already has: matched by number, its ERP data untouched.
    rig.crm.state.insert_plain("customer_form", crm_customer("CUS-000200", "CRM 的名字", status="正式"))
    rig.erp_insert("BD_Customer", erp_customer("CUS-000200", "财务维护的名字"))
    rig.crm.state.insert_plain("opportunity_form", {
        "opp_no": "OPP-2026-0200", "customer_code": "CUS-000200", "customer_name": "CRM 的名字",
        "credit_code": "91350100M000100Y43", "stage": "赢单", "amount": 5000, "currency": "CNY",
        "salesperson": "S002", "erp_customer_no": ""})

    first = rig.run("opportunity_to_erp_customer")
    assert first == {"read": 2, "created": 0, "updated": 1, "unchanged": 0, "skipped": 1, "dead_lettered": 0}
    assert rig.erp_doc("BD_Customer", CODE) is None  # still only a quote
    assert (rig.erp_doc("BD_Customer", "CUS-000200") or {}).get("FName") == "财务维护的名字"
    assert rig.crm_one("opportunity_form", "opp_no", "OPP-2026-0200")["erp_customer_no"] == "CUS-000200"

    rig.crm_edit("opportunity_form", "opp_no", "OPP-2026-0100", {"stage": "赢单"})
    won = rig.run("opportunity_to_erp_customer")
    assert won["created"] == 1 and won["dead_lettered"] == 0
    created = rig.erp_doc("BD_Customer", CODE)
    assert created is not None
    assert created["FName"] == "深圳市前海云帆科技有限公司"
    assert created["FTEL"] == "13812345678" and created["FTAXREGISTERCODE"] == "91350100M000100Y43"
    assert created["FADDRESS"] == "广东省深圳市南山区科技园1号"
    assert created["FSELLER"]["FNumber"] == "S001" and created["FTRADINGCURRID"]["FNumber"] == "PRE001"
    assert rig.erp.state.store.by_number("BD_Customer", CODE)["FDocumentStatus"] == "C"  # audited
    assert rig.crm_one("opportunity_form", "opp_no", "OPP-2026-0100")["erp_customer_no"] == CODE

    before = rig.crm_one("customer_form", "customer_code", CODE)
    formal = rig.run("opportunity_to_crm_customer")
    assert formal["updated"] == 2 and formal["created"] == 0 and formal["dead_lettered"] == 0
    after = rig.crm_one("customer_form", "customer_code", CODE)
    assert after["status"] == "正式" and after["erp_customer_no"] == CODE
    unchanged = {k: v for k, v in before.items() if k not in ("status", "erp_customer_no", "updateTime")}
    assert {k: after[k] for k in unchanged} == unchanged  # only the two owned fields changed
    assert rig.crm_one("customer_form", "customer_code", "CUS-000200")["customer_name"] == "CRM 的名字"
    assert len(rig.crm.state.all("customer_form")) == 2
    assert len(rig.erp.state.store.docs["BD_Customer"]) == 2

    # Now formal, the customers' master data flows on through the customer pipeline (the CRM owns it).
    master = rig.run("crm_customers_to_erp")
    assert master["read"] == 2 and master["updated"] == 2 and master["dead_lettered"] == 0
    erp = rig.erp_doc("BD_Customer", CODE) or {}
    assert erp["FGroup"]["FNumber"] == "KA" and erp["FShortName"] == "深圳市前"
    assert (rig.erp_doc("BD_Customer", "CUS-000200") or {}).get("FName") == "CRM 的名字"
    rig.assert_settled()


def test_b_shipping_in_the_erp_sets_the_crm_order_status_date_and_quantity(rig: Rig) -> None:
    rig.crm.state.insert_plain("customer_form", crm_customer(CODE, "深圳市前海云帆科技有限公司", status="正式"))
    assert rig.run("crm_customers_to_erp")["created"] == 1
    lines = [{"sku": "P-1001", "product_name": "A", "qty": 10, "unit": "个", "price": 113, "tax_rate": 13,
              "amount": 1130, "shipped_qty": None},
             {"sku": "P-1002", "product_name": "B", "qty": 5, "unit": "个", "price": 226, "tax_rate": 13,
              "amount": 1130, "shipped_qty": None}]
    rig.crm.state.insert_plain("sales_order_form", {
        "order_no": "SO-2026-00100", "customer_code": CODE, "order_date": "2026-03-01T02:00:00.000Z",
        "currency": "CNY", "salesperson": "S001", "remark": "分批发货", "status": "待发货", "shipped_date": None,
        "lines": lines})
    assert rig.run("crm_orders_to_erp")["created"] == 1
    assert rig.run("erp_shipments_to_crm")["read"] == 0
    assert rig.run("erp_accounts_to_crm")["updated"] == 1  # (c) sees the new audited order: billed
    crm_lines = rig.crm_one("sales_order_form", "order_no", "SO-2026-00100")["lines"]

    # An outbound delivery that is not audited ships nothing yet.
    rig.erp_insert("SAL_OUTSTOCK", outstock("SO-2026-00100", CODE, date(2026, 3, 3), [("1.01.001", 4)]), status="A")
    draft = rig.run("erp_shipments_to_crm")
    assert draft["read"] == 1 and draft["skipped"] == 1 and draft["updated"] == 0
    assert rig.crm_one("sales_order_form", "order_no", "SO-2026-00100")["status"] == "待发货"

    rig.erp_insert("SAL_OUTSTOCK", outstock("SO-2026-00100", CODE, date(2026, 3, 4), [("1.01.001", 4)]))
    partial = rig.run("erp_shipments_to_crm")
    assert partial == {"read": 1, "created": 0, "updated": 1, "unchanged": 0, "skipped": 0, "dead_lettered": 0}
    order = rig.crm_one("sales_order_form", "order_no", "SO-2026-00100")
    assert order["status"] == "部分发货"
    assert order["shipped_qty"] == 4
    assert order["shipped_date"] == "2026-03-03T16:00:00.000Z"  # 2026-03-04 in Shanghai
    assert order["lines"] == crm_lines and order["remark"] == "分批发货"  # the CRM's lines are not touched
    rig.assert_settled()

    rig.erp_insert("SAL_OUTSTOCK", outstock("SO-2026-00100", CODE, date(2026, 3, 9),
                                            [("1.01.001", 6), ("1.01.002", 5)]))
    done = rig.run("erp_shipments_to_crm")
    assert done["updated"] == 1 and done["created"] == 0
    order = rig.crm_one("sales_order_form", "order_no", "SO-2026-00100")
    assert order["status"] == "已发货" and order["shipped_qty"] == 15
    assert order["shipped_date"] == "2026-03-08T16:00:00.000Z"
    assert order["lines"] == crm_lines
    assert len(rig.crm.state.all("sales_order_form")) == 1
    rig.assert_settled()


def test_b_an_order_born_in_the_erp_is_not_copied_into_the_crm(rig: Rig) -> None:
    rig.erp_insert("BD_Customer", erp_customer(CODE, "深圳市前海云帆科技有限公司"))
    rig.erp_insert("SAL_SaleOrder", erp_order("XSDD000900", CODE, date(2026, 3, 1), [("1.01.001", 2, 226.0)]))
    rig.erp_insert("SAL_OUTSTOCK", outstock("XSDD000900", CODE, date(2026, 3, 2), [("1.01.001", 2)]))
    counts = rig.run("erp_shipments_to_crm")
    assert counts["read"] == 1 and counts["skipped"] == 1
    assert rig.crm.state.all("sales_order_form") == []


def test_c_receipts_set_the_crm_account_status_and_outstanding_balance(rig: Rig) -> None:
    rig.crm.state.insert_plain("customer_form", crm_customer(CODE, "深圳市前海云帆科技有限公司", status="正式"))
    assert rig.run("crm_customers_to_erp")["created"] == 1
    today = shanghai_now().date()
    rig.erp_insert("SAL_SaleOrder", erp_order("SO-2026-00100", CODE, today, [("1.01.001", 10, 1000.0)]))

    def account() -> tuple[str, Any]:
        row = rig.crm_one("customer_form", "customer_code", CODE)
        return row["account_status"], row["outstanding_balance"]

    billed = rig.run("erp_accounts_to_crm")
    assert billed == {"read": 1, "created": 0, "updated": 1, "unchanged": 0, "skipped": 0, "dead_lettered": 0}
    assert account() == ("none", 1000)  # billed, nothing paid, not yet due
    rig.assert_settled()

    rig.erp_insert("AR_RECEIVEBILL", receipt(CODE, today, 400.0, "SO-2026-00100"))
    assert rig.run("erp_accounts_to_crm")["updated"] == 1
    assert account() == ("partly_paid", 600)
    rig.assert_settled()

    rig.erp_insert("AR_RECEIVEBILL", receipt(CODE, today, 600.0, "SO-2026-00100"))
    assert rig.run("erp_accounts_to_crm")["updated"] == 1
    assert account() == ("paid", 0)
    rig.assert_settled()

    # An order 45 days old (due after 30) and unpaid: overdue; a receipt still in draft counts for nothing.
    rig.erp_insert("SAL_SaleOrder", erp_order("SO-2026-00101", CODE, today - timedelta(days=45),
                                              [("1.01.002", 5, 500.0)]))
    rig.erp_insert("AR_RECEIVEBILL", receipt(CODE, today, 500.0, "SO-2026-00101"), status="A")
    assert rig.run("erp_accounts_to_crm")["updated"] == 1
    assert account() == ("overdue", 500)
    customer = rig.crm_one("customer_form", "customer_code", CODE)
    assert customer["status"] == "正式" and customer["customer_name"] == "深圳市前海云帆科技有限公司"
    rig.assert_settled()

    rig.erp_insert("AR_RECEIVEBILL", receipt(CODE, today, 500.0))  # no order named: pays the oldest open one
    assert rig.run("erp_accounts_to_crm")["updated"] == 1
    assert account() == ("paid", 0)
    rig.assert_settled()


def test_an_erp_only_customer_gets_no_crm_record(rig: Rig) -> None:
    rig.erp_insert("BD_Customer", erp_customer("ERP-0001", "只在 ERP 里的客户"))
    rig.erp_insert("AR_RECEIVEBILL", receipt("ERP-0001", shanghai_now().date(), 50.0))
    counts = rig.run("erp_accounts_to_crm")
    assert counts["read"] == 1 and counts["skipped"] == 1
    assert rig.crm.state.all("customer_form") == []


def test_all_processes_over_the_seeded_demo_data_settle(tmp_path: Path) -> None:
    """The seeded CRM (60 customers, 15 opportunities, 40 orders) and ERP: every process, then quiet."""
    for rig in _rig(tmp_path, crm_seed=True):
        first = rig.run_all()
        assert first["opportunity_to_erp_customer"]["created"] + first["opportunity_to_erp_customer"]["updated"] > 0
        assert first["crm_orders_to_erp"]["created"] > 0
        shipped = [o for o in rig.crm.state.all("sales_order_form")
                   if rig.erp_doc("SAL_SaleOrder", o["order_no"]) is not None][:3]
        for order in shipped:
            erp = rig.erp_doc("SAL_SaleOrder", order["order_no"])
            assert erp is not None
            line = erp["FSaleOrderEntry"][0]
            rig.erp_insert("SAL_OUTSTOCK", outstock(order["order_no"], erp["FCustId"]["FNumber"], date(2026, 3, 5),
                                                    [(line["FMaterialId"]["FNumber"], line["FQty"])]))
        second = rig.run_all()
        assert second["erp_shipments_to_crm"]["updated"] == len(shipped)
        for order in shipped:
            status = rig.crm_one("sales_order_form", "order_no", order["order_no"])["status"]
            assert status in ("已发货", "部分发货")
        rig.assert_settled()
