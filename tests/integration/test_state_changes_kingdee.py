"""State changes that set no new FModifyDate still reach the CRM (the ERP sandbox stamps
FApproveDate on Audit as K/3 Cloud does, and leaves FModifyDate alone).

- 50 receipts: 25 audited before a run, 25 saved as drafts (read, and skipped by the mapping's
  `FDOCUMENTSTATUS eq C` filter), then submitted and audited by finance after the run: the CRM must
  end with all 50 payments.
- an outbound delivery read as a draft and audited afterwards must set the CRM order's shipment.
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
CODE = "CUS-000200"


def config_copy(tmp_path: Path, name: str, store_url: str) -> Path:
    text = (ROOT / "config" / name).read_text(encoding="utf-8")
    text = text.replace("../mappings/", f"{ROOT}/mappings/").replace("[demo.env]", f"[{ROOT}/config/demo.env]")
    text = text.replace(store_url, f"sqlite:///{tmp_path}/state.db")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Rig:
    hub: Hub
    crm: SandboxApp
    erp: SandboxApp

    def run(self, name: str) -> dict[str, int]:
        info = run_pipeline(self.hub.pipeline(name), self.hub.store)
        assert info.status == "success", info.error
        return info.counts

    def erp_insert(self, form_id: str, model: dict[str, Any], status: str = "C", hours_ago: float = 2) -> int:
        # Saved hours ago: the audit comes long after, far beyond any overlap window.
        at = shanghai_now() - timedelta(hours=hours_ago)
        return self.erp.state.store.insert(form_id, model, status=status, modify_date=at)

    def finance(self, form_id: str, ids: list[int], *ops: str) -> None:
        for op in ops:
            outcomes = self.erp.state.store.change_status(form_id, op, None, [str(i) for i in ids])
            assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]


def _rig(tmp_path: Path, config: str, store_url: str) -> Iterator[Rig]:
    crm = sandboxes.create("jiandaoyun", seed_data=False)
    erp = sandboxes.create("kingdee", seed_customers=0, seed_receipts=0)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        environ = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        hub = Hub(load_config(config_copy(tmp_path, config, store_url), environ=environ))
        try:
            yield Rig(hub, crm, erp)
        finally:
            hub.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, "demo.yaml", "sqlite:///../.erphub/demo/demo.db")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, "processes.yaml", "sqlite:///../.erphub/processes.db")


def erp_customer(code: str) -> dict[str, Any]:
    return {"FNumber": code, "FName": "深圳市前海云帆科技有限公司", "FCreateOrgId": {"FNumber": "100"},
            "FUseOrgId": {"FNumber": "100"}, "FTRADINGCURRID": {"FNumber": "PRE001"}, "FGroup": {"FNumber": "KA"},
            "FSELLER": {"FNumber": "S001"}}


def receipt(customer: str, day: date, amount: float, order_no: str = "") -> dict[str, Any]:
    return {"FBillTypeID": {"FNUMBER": "SKDLX01_SYS"}, "FDATE": day.isoformat(), "FCONTACTUNITTYPE": "BD_Customer",
            "FCONTACTUNIT": {"FNumber": customer}, "FPAYUNITTYPE": "BD_Customer", "FPAYUNIT": {"FNumber": customer},
            "FCURRENCYID": {"FNumber": "PRE001"}, "FPAYORGID": {"FNumber": "100"}, "FSETTLECUR": {"FNUMBER": "PRE001"},
            "FRECEIVEBILLENTRY": [{"FSETTLETYPEID": {"FNumber": "JSFS04_SYS"}, "FPURPOSEID": {"FNumber": "SFKYT01_SYS"},
                                   "FRECTOTALAMOUNTFOR": amount, "FSALEORDERNO": order_no}]}


def test_receipts_audited_after_the_run_all_reach_the_crm(demo: Rig) -> None:
    rig = demo
    rig.erp_insert("BD_Customer", erp_customer(CODE))
    today = shanghai_now().date()
    # The drafts were saved before the audited ones; the run's cursor passes them all.
    drafts = [rig.erp_insert("AR_RECEIVEBILL", receipt(CODE, today, 200.0 + n), status="A", hours_ago=3)
              for n in range(25)]
    for n in range(25):
        rig.erp_insert("AR_RECEIVEBILL", receipt(CODE, today, 100.0 + n))
    first = rig.run("erp_receipts_to_crm")
    assert (first["created"], first["skipped"]) == (25, 25)
    modified_before = {i: rig.erp.state.store.docs["AR_RECEIVEBILL"][i]["FModifyDate"] for i in drafts}

    rig.finance("AR_RECEIVEBILL", drafts, "Submit", "Audit")
    docs = rig.erp.state.store.docs["AR_RECEIVEBILL"]
    assert all(docs[i]["FModifyDate"] == modified_before[i] and docs[i]["FApproveDate"] for i in drafts)
    rig.run("erp_receipts_to_crm")

    payments = rig.crm.state.all("payment_form")
    assert len(payments) == 50
    assert sorted(float(p["amount"]) for p in payments) == sorted(
        [100.0 + n for n in range(25)] + [200.0 + n for n in range(25)])


def outstock(order_no: str, customer: str, day: date, lines: list[tuple[str, int]]) -> dict[str, Any]:
    return {"FBillTypeID": {"FNUMBER": "XSCKD01_SYS"}, "FDate": day.isoformat(), "FSaleOrgId": {"FNumber": "100"},
            "FStockOrgId": {"FNumber": "100"}, "FCustomerID": {"FNumber": customer},
            "FEntity": [{"FMaterialID": {"FNumber": m}, "FUnitID": {"FNumber": "Pcs"}, "FRealQty": q,
                         "FSoorDerno": order_no} for m, q in lines]}


def test_an_outstock_audited_after_it_was_read_ships_in_the_crm(processes: Rig) -> None:
    rig = processes
    rig.crm.state.insert_plain("customer_form", {
        "customer_code": CODE, "customer_name": "深圳市前海云帆科技有限公司", "short_name": "云帆",
        "credit_code": "91350100M000100Y43", "phone": "13812345678", "contact_name": "王经理",
        "email": "wang@example.com", "address": {"province": "广东省", "city": "深圳市", "district": "南山区",
                                                 "detail": "科技园1号"},
        "customer_group": "KA", "salesperson": "S001", "currency": "CNY", "status": "正式",
        "erp_customer_no": "", "account_status": "none", "outstanding_balance": 0})
    assert rig.run("crm_customers_to_erp")["created"] == 1
    rig.crm.state.insert_plain("sales_order_form", {
        "order_no": "SO-2026-00200", "customer_code": CODE, "order_date": "2026-03-01T02:00:00.000Z",
        "currency": "CNY", "salesperson": "S001", "remark": "", "status": "待发货", "shipped_date": None,
        "lines": [{"sku": "P-1001", "product_name": "A", "qty": 4, "unit": "个", "price": 113, "tax_rate": 13,
                   "amount": 452, "shipped_qty": None}]})
    assert rig.run("crm_orders_to_erp")["created"] == 1
    draft = rig.erp_insert("SAL_OUTSTOCK", outstock("SO-2026-00200", CODE, date(2026, 3, 4), [("1.01.001", 4)]),
                           status="A", hours_ago=3)
    # Another order's delivery, saved later, moves the cursor past the draft.
    rig.erp_insert("SAL_OUTSTOCK", outstock("SO-2026-99999", CODE, date(2026, 3, 4), [("1.01.001", 1)]))
    assert rig.run("erp_shipments_to_crm")["updated"] == 0  # a draft ships nothing
    rig.finance("SAL_OUTSTOCK", [draft], "Submit", "Audit")
    rig.run("erp_shipments_to_crm")
    [order] = rig.crm.state.find("sales_order_form", "order_no", "SO-2026-00200")
    assert order["status"] == "已发货" and order["shipped_qty"] == 4


def test_a_receipt_drafted_then_submitted_and_audited_reaches_the_crm(demo: Rig) -> None:
    """A receipt kept as a draft (暂存, status Z, no number yet) is read and skipped; once finance submits
    and audits it (FApproveDate, no FModifyDate), the next run delivers it."""
    rig = demo
    store = rig.erp.state.store
    rig.erp_insert("BD_Customer", erp_customer(CODE))
    today = shanghai_now().date()
    drafted = store.save("AR_RECEIVEBILL", receipt(CODE, today, 321.0), draft=True)
    assert drafted.ok and drafted.id is not None, drafted.errors
    doc = store.get("AR_RECEIVEBILL", doc_id=drafted.id)
    assert doc["FDOCUMENTSTATUS"] == "Z" and not doc.get("FBillNo")  # this form spells its status key so
    doc["FModifyDate"] = doc["FCreateDate"] = shanghai_now() - timedelta(hours=3)  # drafted long before the run
    rig.erp_insert("AR_RECEIVEBILL", receipt(CODE, today, 100.0))  # saved later: the cursor passes the draft
    first = rig.run("erp_receipts_to_crm")
    assert (first["created"], first["skipped"]) == (1, 1)
    assert [float(p["amount"]) for p in rig.crm.state.all("payment_form")] == [100.0]

    rig.finance("AR_RECEIVEBILL", [drafted.id], "Submit", "Audit")
    doc = store.get("AR_RECEIVEBILL", doc_id=drafted.id)
    assert doc["FDOCUMENTSTATUS"] == "C" and doc["FBillNo"]  # numbered when submitted
    assert rig.run("erp_receipts_to_crm")["created"] == 1
    payments = rig.crm.state.all("payment_form")
    assert sorted(float(p["amount"]) for p in payments) == [100.0, 321.0]
