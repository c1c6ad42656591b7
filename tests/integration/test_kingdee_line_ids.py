"""Kingdee order lines keep their FEntryID from ids the link kept, without re-reading them first.

Judged at the sandbox: its own documents' FEntryIDs, and its request log (no ExecuteBillQuery or
View for the lines when the link had them; one re-read when the ids went stale in the ERP).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from erphub.core.records import TARGET_META, WriteAction, WriteRequest, WriteResult
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.kingdee import create_sandbox
from tests.integration.test_kingdee_vendor_gaps import connector, entry_ids, line, order, seed_customer
from tests.integration.test_state_changes_kingdee import CODE, Rig, _rig

READS = ("ExecuteBillQuery", "BillQuery", "View")


@pytest.fixture()
def sandbox() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    app = create_sandbox(seed_customers=0, seed_receipts=0)
    with SandboxServer(app) as server:
        yield app, server


def reads(app: SandboxApp) -> int:
    return sum(1 for e in app.log.entries() if any(e.path.endswith(f".{name}.common.kdsvc") for name in READS))


def write(app_kd: Any, data: dict[str, Any], target: str | None, meta: dict[str, Any] | None, n: int) -> WriteResult:
    [result] = app_kd.write("sales_order", [WriteRequest("o1", "SO-LINES-1", target, data, f"k{n}",
                                                         target_meta=meta)])
    return result


def test_an_update_with_kept_line_ids_sends_no_reread(sandbox: tuple[SandboxApp, SandboxServer]) -> None:
    app, _ = sandbox
    seed_customer(app)
    kd = connector(sandbox)
    created = write(kd, order([line("1.01.001", 1), line("1.01.002", 2), line("1.01.001", 3)]), None, None, 1)
    assert created.ok, created.error
    before = [eid for eid, _ in entry_ids(app, str(created.target_id))]
    assert created.target_meta is not None
    app.log.clear()
    # Quantities change, a fourth line is added; the link's ids say which line is which.
    lines = [line("1.01.001", 5), line("1.01.002", 6), line("1.01.001", 7), line("1.01.003", 8)]
    updated = write(kd, order(lines), created.target_id, created.target_meta, 2)
    assert updated.ok and updated.action is WriteAction.UPDATED, updated.error
    assert reads(app) == 0  # no ExecuteBillQuery/View: the ids came from the link
    after = entry_ids(app, str(created.target_id))
    assert [eid for eid, _ in after[:3]] == before and [qty for _, qty in after] == [5, 6, 7, 8]
    # The next update pairs the added line too, still without a read.
    app.log.clear()
    again = write(kd, order([*lines[:3], line("1.01.003", 9)]), created.target_id, updated.target_meta, 3)
    assert again.ok and reads(app) == 0
    assert entry_ids(app, str(created.target_id)) == [(eid, qty) for (eid, _), qty in zip(after, [5, 6, 7, 9],
                                                                                           strict=True)]
    kd.close()


def test_without_kept_ids_the_lines_are_read_first(sandbox: tuple[SandboxApp, SandboxServer]) -> None:
    app, _ = sandbox
    seed_customer(app)
    kd = connector(sandbox)
    created = write(kd, order([line("1.01.001", 1), line("1.01.002", 2)]), None, None, 1)
    before = [eid for eid, _ in entry_ids(app, str(created.target_id))]
    app.log.clear()
    updated = write(kd, order([line("1.01.001", 4), line("1.01.002", 5)]), created.target_id, None, 2)
    assert updated.ok and reads(app) == 1  # the link had no ids (an older link): one re-read
    assert [eid for eid, _ in entry_ids(app, str(created.target_id))] == before
    kd.close()


def test_ids_stale_after_an_edit_in_the_erp_are_read_again(sandbox: tuple[SandboxApp, SandboxServer]) -> None:
    app, _ = sandbox
    seed_customer(app)
    kd = connector(sandbox)
    created = write(kd, order([line("1.01.001", 1), line("1.01.002", 2)]), None, None, 1)
    fid = int(str(created.target_id))
    first, second = entry_ids(app, str(fid))
    # Someone in the client replaces the second line by a new one (new FEntryID).
    store = app.state.store
    outcome = store.save("SAL_SaleOrder", {"FID": fid, "FSaleOrderEntry": [
        {"FEntryID": first[0]}, line("1.01.002", 2)]}, need_update_fields=["FSaleOrderEntry"])
    assert outcome.ok, outcome.errors
    replaced = entry_ids(app, str(fid))[1][0]
    assert replaced != second[0]
    app.log.clear()
    updated = write(kd, order([line("1.01.001", 3), line("1.01.002", 4)]), created.target_id, created.target_meta, 2)
    assert updated.ok, updated.error
    assert reads(app) == 1  # refused as an unknown entry id, then read once and saved again
    assert entry_ids(app, str(fid)) == [(first[0], 3), (replaced, 4)]
    kd.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, "demo.yaml", "sqlite:///../.erphub/demo/demo.db")


def test_the_link_keeps_line_ids_between_runs(demo: Rig) -> None:
    rig = demo
    rig.erp_insert("BD_Customer", {"FNumber": CODE, "FName": "深圳市前海云帆科技有限公司",
                                   "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"},
                                   "FTRADINGCURRID": {"FNumber": "PRE001"}})
    crm_id = rig.crm.state.insert_plain("sales_order_form", {
        "order_no": "SO-2026-00300", "customer_code": CODE, "order_date": "2026-03-01T02:00:00.000Z",
        "currency": "CNY", "salesperson": "S001", "remark": "", "status": "待发货", "shipped_date": None,
        "lines": [{"sku": "P-1001", "product_name": "A", "qty": 4, "unit": "个", "price": 113, "tax_rate": 13,
                   "amount": 452, "shipped_qty": None},
                  {"sku": "P-1002", "product_name": "B", "qty": 1, "unit": "个", "price": 10, "tax_rate": 13,
                   "amount": 10, "shipped_qty": None}]})
    assert rig.run("crm_orders_to_erp")["created"] == 1
    [link] = rig.hub.store.links_for("crm_orders_to_erp", [crm_id]).values()
    assert link.written_payload and link.written_payload[TARGET_META]  # the ids are in the link
    fid = int(str(link.target_id))
    before = [row["FEntryID"] for row in rig.erp.state.store.get("SAL_SaleOrder", doc_id=fid)["FSaleOrderEntry"]]

    record = rig.crm.state.records["sales_order_form"][crm_id]
    lines = [{**row, "qty": row["qty"] + 1, "amount": None} for row in record["lines"]]
    rig.crm.state.touch("sales_order_form", [crm_id], changes={"lines": lines, "remark": "加量"})
    rig.erp.log.clear()
    assert rig.run("crm_orders_to_erp")["updated"] == 1
    assert reads(rig.erp) == 0  # the update re-read nothing from Kingdee
    doc = rig.erp.state.store.get("SAL_SaleOrder", doc_id=fid)
    assert [(row["FEntryID"], int(row["FQty"])) for row in doc["FSaleOrderEntry"]] == list(zip(before, [5, 2],
                                                                                              strict=True))
    assert doc["FNote"] == "加量"
