"""The jiandaoyun connector against its sandbox on loopback: reads, writes, lookups, errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr, ValidationError

from erphub.connectors.base import SystemContext
from erphub.connectors.jiandaoyun import JiandaoyunConnector, JiandaoyunSettings
from erphub.connectors.registry import connector_class
from erphub.core.errors import AuthError
from erphub.core.records import Cursor, WriteAction, WriteRequest
from erphub.monitoring import metrics
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.jiandaoyun import DEMO_API_KEY, create_sandbox

_names = itertools.count()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    sandbox = create_sandbox()
    with SandboxServer(sandbox) as server:
        yield sandbox, server


def make(server: SandboxServer, key: str = DEMO_API_KEY) -> JiandaoyunConnector:
    settings = JiandaoyunSettings(base_url=server.base_url, api_key=SecretStr(key))
    context = SystemContext(name=f"jdy-it-{next(_names)}", max_attempts=4, max_retry_seconds=10)
    return JiandaoyunConnector(settings, context)


def test_registered_with_strict_settings() -> None:
    assert connector_class("jiandaoyun") is JiandaoyunConnector
    with pytest.raises(ValidationError):
        JiandaoyunSettings.model_validate({"api_key": "k", "unknown": 1})
    spec = JiandaoyunConnector(JiandaoyunSettings(api_key=SecretStr("k")), SystemContext(name="x")).entities()
    assert spec["sales_order"].child_fields["lines"] >= {"sku", "qty", "price", "tax_rate"}
    assert spec["customer"].key_field == "customer_code" and spec["customer"].native_name == "customer_form"
    assert "updateTime" in (spec["payment"].fields or set())


def test_full_read_then_only_edited_records(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    conn = make(server)
    pages = list(conn.read_changes("customer", None, page_size=7))
    ids = [r.id for p in pages for r in p.records]
    assert len(ids) == len(set(ids)) == 60
    # Checkpoints fall mid-read now (updateTime windows), each one safe: every record at or before it
    # was on a page already yielded, so a run killed after that page loses nothing by resuming there.
    everything = [r for p in pages for r in p.records]
    for n, page in enumerate(pages):
        if page.checkpoint is not None:
            seen = {r.id for p in pages[:n + 1] for r in p.records}
            assert {r.id for r in everything if not page.checkpoint.is_before(r.updated_at, r.id)} <= seen
    checkpoint = pages[-1].checkpoint
    assert checkpoint == max((r.cursor() for p in pages for r in p.records), key=Cursor.key)
    assert [r for p in conn.read_changes("customer", checkpoint) for r in p.records] == []
    # A person edits three customers in the CRM: only those move.
    sandbox.state.touch("customer_form", ids[10:13], changes={"phone": "13900000000"})
    changed = [r for p in conn.read_changes("customer", checkpoint, page_size=2) for r in p.records]
    assert sorted(r.id for r in changed) == sorted(ids[10:13])
    assert all(r.data["phone"] == "13900000000" and r.updated_at.tzinfo for r in changed)
    conn.close()


def test_sales_order_create_and_update_with_lines(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    conn = make(server)
    data = {
        "order_no": "SO-IT-0001",
        "customer_code": "CUS-000001",
        "order_date": datetime(2026, 3, 1, 8, 30, tzinfo=UTC),
        "currency": "CNY",
        "lines": [{"sku": "P-1001", "qty": 2, "price": Decimal("18.50"), "tax_rate": 13, "amount": Decimal("37.00")}],
    }
    request = WriteRequest("erp-1", "SO-IT-0001", None, data, "it:SO-IT-0001:1")
    [created] = conn.write("sales_order", [request])
    assert created.ok and created.action is WriteAction.CREATED
    stored = sandbox.state.get("sales_order_form", created.target_id)
    assert stored["order_date"] == "2026-03-01T08:30:00.000Z"
    assert stored["lines"][0]["price"] == 18.5 and stored["lines"][0]["qty"] == 2
    changed = {**data, "lines": [{"sku": "P-1002", "qty": 1}, {"sku": "P-1003", "qty": 4}]}
    [updated] = conn.write("sales_order", [WriteRequest("erp-1", "SO-IT-0001", created.target_id, changed, "it:2")])
    assert updated.ok and updated.action is WriteAction.UPDATED and updated.target_id == created.target_id
    assert [line["sku"] for line in sandbox.state.get("sales_order_form", created.target_id)["lines"]] == [
        "P-1002",
        "P-1003",
    ]
    [gone] = conn.write("sales_order", [WriteRequest("erp-1", "SO-IT-0001", "0" * 24, changed, "it:3")])
    assert gone.error is not None and gone.error.code == "4001"
    conn.close()


def test_owned_fields_limit_what_an_update_sends(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    conn = make(server)
    [row] = sandbox.state.find("customer_form", "customer_code", "CUS-000005")
    request = WriteRequest(
        "erp-5",
        "CUS-000005",
        row["_id"],
        {"account_status": "overdue", "customer_name": "不该写入"},
        "it:own",
        owned_fields=frozenset({"account_status"}),
    )
    [result] = conn.write("customer", [request])
    assert result.ok
    after = sandbox.state.get("customer_form", row["_id"])
    assert after["account_status"] == "overdue" and after["customer_name"] == row["customer_name"]
    conn.close()


def test_large_batches_and_lookups_are_split(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    conn = make(server)
    before = sandbox.log.count("data/batch_create")
    batch = [
        WriteRequest(f"p{i}", f"SKD-IT-{i:04d}", None, {"receipt_no": f"SKD-IT-{i:04d}", "amount": i}, f"it:p{i}")
        for i in range(130)
    ]
    results = conn.write("payment", batch)
    assert all(r.ok for r in results) and len({r.target_id for r in results}) == 130
    assert sandbox.log.count("data/batch_create") - before == 2
    keys = [f"SKD-IT-{i:04d}" for i in range(260)]
    lists_before = sandbox.log.count("data/list")
    found = conn.lookup("payment", keys)
    assert found == {r_key: r.target_id for r_key, r in zip(keys[:130], results, strict=True)}
    assert sandbox.log.count("data/list") - lists_before >= 2  # at most 200 values per `in`
    conn.close()


def test_wrong_api_key_is_an_auth_error_without_the_key(served: tuple[SandboxApp, SandboxServer]) -> None:
    _, server = served
    conn = make(server, key="jdy-wrong-key-123456")
    with pytest.raises(AuthError) as info:
        conn.check()
    assert "jdy-wrong-key-123456" not in str(info.value) and "8301" in str(info.value)
    conn.close()


def test_vendor_throttle_codes_are_retried_and_counted(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    conn = make(server)
    sandbox.faults.burst_429("data/list", 1, retry_after=None)
    conn.check()
    assert metrics.REGISTRY.get_sample_value("erphub_rate_limited_total", {"system": conn.context.name}) == 1
    assert sandbox.log.entries("data/list")[-2].status == 429
    conn.close()
