"""Kingdee gaps of vendor-gaps.md: line identity on order updates, LoginBySign by default, FUseOrgId."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from erphub.connectors.base import SystemContext
from erphub.connectors.kingdee import KingdeeConnector, KingdeeSettings
from erphub.core.records import WriteAction, WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.kingdee import create_sandbox


@pytest.fixture()
def sandbox() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    app = create_sandbox(seed_customers=0, seed_receipts=0)
    with SandboxServer(app) as server:
        yield app, server


def connector(sandbox: tuple[SandboxApp, SandboxServer], **settings: Any) -> KingdeeConnector:
    app, server = sandbox
    creds = app.credentials
    values: dict[str, Any] = {"server_url": f"{server.base_url}/k3cloud", "acct_id": creds["acct_id"],
                              "username": creds["username"], "password": creds["password"], **settings}
    context = SystemContext(name="kd", rate_limit_per_second=500.0, read_timeout_s=5.0,
                            secrets=(creds["password"], creds["app_secret"]))
    return KingdeeConnector(KingdeeSettings.model_validate(values), context)


def line(material: str, qty: int, price: float = 10.0) -> dict[str, Any]:
    return {"FMaterialId": {"FNumber": material}, "FUnitID": {"FNumber": "Pcs"}, "FQty": qty, "FTaxPrice": price}


def order(lines: list[dict[str, Any]], note: str = "首单") -> dict[str, Any]:
    return {"FBillNo": "SO-LINES-1", "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01",
            "FCustId": {"FNumber": "C-0000"}, "FSalerId": {"FNumber": "S003"}, "FNote": note,
            "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}}, "FSaleOrderEntry": lines}


def seed_customer(app: SandboxApp) -> None:
    app.state.store.insert("BD_Customer", {"FNumber": "C-0000", "FName": "客户", "FCreateOrgId": {"FNumber": "100"},
                                           "FTRADINGCURRID": {"FNumber": "PRE001"}})


def entry_ids(app: SandboxApp, fid: str) -> list[tuple[int, Any]]:
    doc = app.state.store.get("SAL_SaleOrder", doc_id=int(fid))
    return [(row["FEntryID"], row["FQty"]) for row in doc["FSaleOrderEntry"]]


def write(kd: KingdeeConnector, data: dict[str, Any], target: str | None, n: int) -> Any:
    [result] = kd.write("sales_order", [WriteRequest("o1", "SO-LINES-1", target, data, f"k{n}")])
    return result


def test_an_order_update_keeps_each_lines_entry_id(sandbox: tuple[SandboxApp, SandboxServer]) -> None:
    app, _ = sandbox
    seed_customer(app)
    kd = connector(sandbox)
    created = write(kd, order([line("1.01.001", 1), line("1.01.002", 2)]), None, 1)
    assert created.ok, created.error
    before = entry_ids(app, created.target_id)
    # Quantities change and a third line is added: the first two keep their FEntryID.
    updated = write(kd, order([line("1.01.001", 5), line("1.01.002", 6), line("1.01.003", 7)]),
                    created.target_id, 2)
    assert updated.ok and updated.action is WriteAction.UPDATED, updated.error
    after = entry_ids(app, created.target_id)
    assert [eid for eid, _ in after[:2]] == [eid for eid, _ in before]
    assert [qty for _, qty in after] == [5, 6, 7]
    assert after[2][0] not in {eid for eid, _ in before}
    kd.close()


def test_a_removed_line_is_deleted_on_purpose_and_the_rest_kept(sandbox: tuple[SandboxApp, SandboxServer]) -> None:
    app, _ = sandbox
    seed_customer(app)
    kd = connector(sandbox)
    created = write(kd, order([line("1.01.001", 1), line("1.01.002", 2)]), None, 1)
    first_id = entry_ids(app, created.target_id)[0][0]
    assert write(kd, order([line("1.01.001", 3)]), created.target_id, 2).ok
    assert entry_ids(app, created.target_id) == [(first_id, 3)]
    kd.close()


def outstock_for(app: SandboxApp, order_no: str, material: str) -> None:
    app.state.store.insert("SAL_OUTSTOCK", {
        "FBillTypeID": {"FNUMBER": "XSCKD01_SYS"}, "FDate": "2026-03-02", "FSaleOrgId": {"FNumber": "100"},
        "FStockOrgId": {"FNumber": "100"}, "FCustomerID": {"FNumber": "C-0000"},
        "FEntity": [{"FMaterialID": {"FNumber": material}, "FUnitID": {"FNumber": "Pcs"}, "FRealQty": 1,
                     "FSoorDerno": order_no}]})


def test_an_update_of_a_shipped_order_keeps_its_lines(sandbox: tuple[SandboxApp, SandboxServer]) -> None:
    """Deleting and recreating every line is refused once a line has an outstock; keeping ids is not."""
    app, _ = sandbox
    seed_customer(app)
    kd = connector(sandbox)
    created = write(kd, order([line("1.01.001", 1), line("1.01.002", 2)]), None, 1)
    outstock_for(app, "SO-LINES-1", "1.01.001")
    updated = write(kd, order([line("1.01.001", 1), line("1.01.002", 4)], note="改"), created.target_id, 2)
    assert updated.ok, updated.error
    doc = app.state.store.get("SAL_SaleOrder", doc_id=int(created.target_id))
    assert doc["FNote"] == "改" and [row["FQty"] for row in doc["FSaleOrderEntry"]] == [1, 4]
    kd.close()


def test_removing_a_shipped_line_is_a_clear_dead_letter(sandbox: tuple[SandboxApp, SandboxServer]) -> None:
    app, _ = sandbox
    seed_customer(app)
    kd = connector(sandbox)
    created = write(kd, order([line("1.01.001", 1), line("1.01.002", 2)]), None, 1)
    before = entry_ids(app, created.target_id)
    outstock_for(app, "SO-LINES-1", "1.01.001")
    refused = write(kd, order([line("1.01.002", 2)]), created.target_id, 2)
    assert refused.error is not None and refused.error.code == "line_has_downstream"
    assert not refused.error.transient and "downstream" in refused.error.message
    assert entry_ids(app, created.target_id) == before
    kd.close()


def test_sandbox_refuses_deleting_lines_with_downstream_documents(sandbox: tuple[SandboxApp, SandboxServer]) -> None:
    app, _ = sandbox
    seed_customer(app)
    store = app.state.store
    fid = store.insert("SAL_SaleOrder", {**order([line("1.01.001", 1), line("1.01.002", 2)]),
                                         "FSaleOrgId": {"FNumber": "100"}})
    outstock_for(app, "SO-LINES-1", "1.01.002")
    # IsDeleteEntry true (the default) and lines sent without FEntryID: every old line is deleted.
    outcome = store.save("SAL_SaleOrder", {"FID": fid, **order([line("1.01.001", 1), line("1.01.002", 2)]),
                                           "FSaleOrgId": {"FNumber": "100"}})
    second = entry_ids(app, str(fid))[1][0]
    assert [e.message for e in outcome.errors] == [f"订单明细内码为{second}的分录已生成下游单据，不允许删除"]
    # Lines kept by id with IsDeleteEntry false are fine.
    ids = [eid for eid, _ in entry_ids(app, str(fid))]
    kept = order([{**line("1.01.001", 1), "FEntryID": ids[0]}, {**line("1.01.002", 9), "FEntryID": ids[1]}])
    saved = store.save("SAL_SaleOrder", {"FID": fid, **kept, "FSaleOrgId": {"FNumber": "100"}}, is_delete_entry=False)
    assert saved.ok, saved.errors


def test_login_by_sign_is_the_default_when_app_credentials_are_given(
    sandbox: tuple[SandboxApp, SandboxServer],
) -> None:
    app, _ = sandbox
    creds = app.credentials
    kd = connector(sandbox, app_id=creds["app_id"], app_secret=creds["app_secret"])  # password given too
    kd.check()
    paths = [e.path for e in app.log.entries()]
    assert any(p.endswith("AuthService.LoginBySign.common.kdsvc") for p in paths)
    assert not any("ValidateUser" in p for p in paths)
    kd.close()


def test_reads_and_lookups_pick_the_configured_use_organisation(
    sandbox: tuple[SandboxApp, SandboxServer],
) -> None:
    app, _ = sandbox
    store = app.state.store
    original = store.insert("BD_Customer", {
        "FNumber": "MULTI-1", "FName": "集团客户", "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"},
        "FTRADINGCURRID": {"FNumber": "PRE001"}})
    org_200 = store.get("ORG_Organizations", number="200")["FORGID"]
    [copy] = store.allocate("BD_Customer", str(original), str(org_200))
    assert copy.id is not None and copy.id != original
    east = connector(sandbox, use_org_number="200")
    assert east.lookup("customer", ["MULTI-1"]) == {"MULTI-1": str(copy.id)}
    records = [r for page in east.read_changes("customer", None) for r in page.records]
    assert [(r.id, r.data["FUseOrgId"]) for r in records] == [(str(copy.id), {"FNumber": "200"})]
    head = connector(sandbox, use_org_number="100")
    assert head.lookup("customer", ["MULTI-1"]) == {"MULTI-1": str(original)}
    east.close()
    head.close()
