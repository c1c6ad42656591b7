"""Yonyou gaps of vendor-gaps.md: required save fields, documented operators, queryOrders, reference
codes from the returned fields, the published 60/min default, the receipt entity disabled with a reason."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from pydantic import SecretStr

from erphub.connectors.base import SystemContext
from erphub.connectors.yonyou import YonyouConnector, YonyouSettings
from erphub.core.errors import ConfigError
from erphub.core.records import WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.yonyou import YonyouError, create_sandbox

_names = itertools.count()


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    sb = create_sandbox()
    with SandboxServer(sb) as server:
        yield sb, server


def connect(server: SandboxServer, *, rate: float | None = 500.0, **overrides: Any) -> YonyouConnector:
    settings = YonyouSettings(tenant_id="demo_tenant", app_key="yonyou_demo_app_key",
                              app_secret=SecretStr("yonyou_demo_app_secret"), discovery_url=server.base_url,
                              **overrides)
    context = SystemContext(name=f"yonyou-gaps-{next(_names)}", rate_limit_per_second=rate, read_timeout_s=5)
    return YonyouConnector(settings, context)


def order(code: str, lines: int = 2) -> dict[str, Any]:
    return {"code": code, "vouchdate": "2026-03-01 00:00:00", "salesOrgId": "100", "transactionTypeId": "SO01",
            "agentId": "CUS-1", "orderPrices!currency": "CNY", "orderPrices!exchRate": 1,
            "orderDetails": [{"productId": f"1.01.{n + 1:03d}", "qty": n + 1, "oriTaxUnitPrice": 10.5,
                              "masterUnitId": "Pcs", "taxId": "VAT13"} for n in range(lines)]}


def req(code: str, data: dict[str, Any]) -> WriteRequest:
    return WriteRequest(source_id=code, key=code, target_id=None, data=data, idempotency_key=uuid.uuid4().hex)


def test_sandbox_refuses_undocumented_operators_and_missing_required_fields(sandbox: Any) -> None:
    sb, _ = sandbox
    with pytest.raises(YonyouError, match="egt"):
        sb.state.order_list({"pageIndex": 1, "pageSize": 10,
                             "simpleVOs": [{"field": "pubts", "op": "egt", "value1": "2026-03-01 00:00:00"}]}, 500)
    sb.state.seed_customer("CUS-1", "客户")
    bare = {**order("SO-BARE", 1), "payMoney": 10.5, "_status": "Insert", "resubmitCheckKey": "k-bare"}
    with pytest.raises(YonyouError, match="invoiceAgentId"):
        sb.state.order_save(bare, "/x")
    with pytest.raises(YonyouError, match="iProductAuxUnitId"):
        sb.state.order_save({**bare, "invoiceAgentId": "CUS-1", "resubmitCheckKey": "k-bare-2"}, "/x")


def test_orders_are_saved_with_the_required_fields_derived(sandbox: Any) -> None:
    sb, server = sandbox
    customer = sb.state.seed_customer("CUS-1", "客户")
    with closing(connect(server)) as conn:
        [saved] = conn.write("sales_order", [req("SO-REQ", order("SO-REQ"))])
    assert saved.ok, saved.error
    stored = sb.state.orders[int(saved.target_id)]
    assert stored["invoiceAgentId"] == customer["id"]
    first = stored["orderDetails"][0]
    assert (first["subQty"], first["priceQty"], first["invExchRate"], first["orderProductType"]) == (1, 1, 1, "SALE")
    assert first["iProductUnitId"] == first["iProductAuxUnitId"] == first["masterUnitId"]
    assert first["orderDetailPrices!natSum"] == 10.5


def test_keyset_reads_ask_for_their_order_and_read_codes_from_returned_fields(sandbox: Any) -> None:
    sb, server = sandbox
    sb.state.seed_customer("CUS-1", "客户")
    codes = [f"SO-K{n}" for n in range(5)]
    with closing(connect(server)) as conn:
        assert all(r.ok for r in conn.write("sales_order", [req(c, order(c)) for c in codes]))
        # Without queryOrders the list answers newest first; the connector asks for (pubts, id).
        unordered = sb.state.order_list({"pageIndex": 1, "pageSize": 100}, 500)["recordList"]
        assert unordered[0]["code"] == codes[-1]
        # Rows name references by id (with `_name`/`_code` companions), never by the code that was saved.
        row = unordered[0]
        assert str(row["salesOrgId"]).isdigit() and str(row["agentId"]).isdigit() and str(row["taxId"]).isdigit()
        assert (row["salesOrgId_code"], row["agentId_code"], row["taxId_code"]) == ("100", "CUS-1", "VAT13")
        records = [r for p in conn.read_changes("sales_order", None, page_size=2) for r in p.records]
        assert [r.data["code"] for r in records] == codes
        # References read as the codes a mapping writes, so a reconcile compares like with like.
        assert {r.data["agentId"] for r in records} == {"CUS-1"}
        assert {(r.data["salesOrgId"], r.data["transactionTypeId"]) for r in records} == {("100", "SO01")}
        assert {line["taxId"] for line in records[0].data["orderDetails"]} == {"VAT13"}
        assert [line["productId"] for line in records[0].data["orderDetails"]] == ["1.01.001", "1.01.002"]
        # Resuming after the third one reads exactly the rest (pubts >= T sent as the documented `gt`).
        rest = [r for p in conn.read_changes("sales_order", records[2].cursor()) for r in p.records]
        assert [r.data["code"] for r in rest] == codes[3:]


def test_rows_without_ref_codes_still_read_the_customer_as_its_code() -> None:
    """voucherorder's documented rows name the customer by id (and `_name`) only: the connector looks it up."""
    sb = create_sandbox(ref_codes=False)
    customer = sb.state.seed_customer("CUS-7", "客户七")
    with SandboxServer(sb) as server, closing(connect(server)) as conn:
        assert conn.write("sales_order", [req("SO-NC", {**order("SO-NC"), "agentId": "CUS-7"})])[0].ok
        sb.log.clear()
        [record] = [r for p in conn.read_changes("sales_order", None) for r in p.records]
        lookups = sb.log.count("/yonbip/digitalModel/merchant/newlist")
    [stored] = [o for o in sb.state.orders.values() if o["code"] == "SO-NC"]
    assert stored["agentId"] == customer["id"] != customer["code"]  # the sandbox holds (and answers) the id
    assert record.data["agentId"] == record.data["invoiceAgentId"] == customer["code"] == "CUS-7"
    assert lookups == 1  # one merchant lookup by id, for both references


def test_the_published_60_per_minute_is_the_default_rate(sandbox: Any) -> None:
    sb, server = sandbox
    with closing(connect(server, rate=None)) as conn:
        conn.check()
        conn.check()
    business = [e.at for e in sb.log.entries() if "/yonbip/" in e.path]
    assert len(business) == 2 and business[1] - business[0] >= 0.9


def test_receipts_are_disabled_with_the_reason_until_an_endpoint_is_configured(sandbox: Any) -> None:
    _, server = sandbox
    with closing(connect(server)) as conn:
        assert not conn.entities()["receipt"].directions
        with pytest.raises(ConfigError, match="no receipt API is confirmed"):
            list(conn.read_changes("receipt", None))
        with pytest.raises(ConfigError, match="receipt_path"):
            conn.write("receipt", [req("RC-1", {"code": "RC-1"})])
