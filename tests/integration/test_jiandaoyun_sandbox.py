"""The Jiandaoyun sandbox over loopback HTTP: the v5 contract, its errors, limits and test hooks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.fakedata import Fake, is_valid_uscc
from erphub.sandbox.faults import max_in_window
from erphub.sandbox.jiandaoyun import DEMO_API_KEY, create_sandbox
from erphub.sandbox.jiandaoyun.seed import BAD_CREDIT_CUSTOMER, MISSING_CUSTOMER_ORDER, UNKNOWN_SKU, UNKNOWN_SKU_ORDER

API = "/api/v5/app/entry"
TX = "87cd7d71-c6df-4281-9927-469094395677"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SandboxApp, httpx.Client]]:
    sandbox = create_sandbox(enforce_limits=False)
    with SandboxServer(sandbox) as server:
        client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {DEMO_API_KEY}"})
        yield sandbox, client
        client.close()


def call(client: httpx.Client, op: str, entry: str = "customer_form", **body: Any) -> httpx.Response:
    return client.post(f"{API}/{op}", json={"app_id": "crm_app_0001", "entry_id": entry, **body})


def list_all(client: httpx.Client, entry: str, limit: int = 100, **body: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    last = ""
    while True:
        rows = call(client, "data/list", entry, limit=limit, data_id=last, **body).json()["data"]
        out += rows
        if len(rows) < limit:
            return out
        last = rows[-1]["_id"]


def test_seeded_crm_data_looks_real_and_includes_bad_records(served: tuple[SandboxApp, httpx.Client]) -> None:
    _, client = served
    customers = list_all(client, "customer_form")
    orders = list_all(client, "sales_order_form")
    assert len(customers) == 60 and len(list_all(client, "opportunity_form")) == 15 and len(orders) == 40
    bad = [c["customer_code"] for c in customers if not is_valid_uscc(c["credit_code"])]
    assert bad == [BAD_CREDIT_CUSTOMER]
    assert all(c["customer_name"].endswith("公司") and c["phone"][:1] == "1" for c in customers)
    assert all(1 <= len(o["lines"]) <= 4 for o in orders)
    by_no = {o["order_no"]: o for o in orders}
    assert UNKNOWN_SKU in [line["sku"] for line in by_no[UNKNOWN_SKU_ORDER]["lines"]]
    codes = {c["customer_code"] for c in customers}
    assert by_no[MISSING_CUSTOMER_ORDER]["customer_code"] not in codes
    skus = {line["sku"] for o in orders for line in o["lines"]} - {UNKNOWN_SKU}
    assert skus <= {f"P-{n}" for n in range(1001, 1021)}
    for row in customers + orders:
        assert row["updateTime"].endswith("Z") and len(row["updateTime"]) == 24


def test_fake_data_is_deterministic() -> None:
    a, b = Fake(7), Fake(7)
    assert [a.company() for _ in range(5)] == [b.company() for _ in range(5)]
    assert a.order_lines(3) == b.order_lines(3)


def test_bad_or_missing_key_is_400_with_vendor_envelope(served: tuple[SandboxApp, httpx.Client]) -> None:
    _, client = served
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(f"{client.base_url}{API}/data/list", json={}, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == 8301


def test_data_id_paging_is_by_id_ascending_and_limit_is_bounded(served: tuple[SandboxApp, httpx.Client]) -> None:
    _, client = served
    pages = [call(client, "data/list", limit=7).json()["data"]]
    while len(pages[-1]) == 7:
        pages.append(call(client, "data/list", limit=7, data_id=pages[-1][-1]["_id"]).json()["data"])
    ids = [r["_id"] for p in pages for r in p]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 60
    for limit in (0, 101, "10"):
        r = call(client, "data/list", limit=limit)
        assert r.status_code == 400 and r.json()["code"] == 1
    assert len(call(client, "data/list").json()["data"]) == 10  # default limit


def test_filters(served: tuple[SandboxApp, httpx.Client]) -> None:
    _, client = served
    rows = list_all(client, "customer_form")
    t = [r["updateTime"] for r in rows]

    def where(*cond: dict[str, Any], rel: str = "and") -> list[str]:
        return [r["customer_code"] for r in list_all(client, "customer_form", filter={"rel": rel, "cond": list(cond)})]

    inclusive = where({"field": "updateTime", "type": "datetime", "method": "range", "value": [t[3], t[5]]})
    assert inclusive == [r["customer_code"] for r in rows[3:6]]
    assert len(where({"field": "updateTime", "method": "range", "value": [t[58], None]})) == 2
    assert where({"field": "customer_code", "method": "in", "value": ["CUS-000002", "CUS-000009", "nope"]}) == [
        "CUS-000002",
        "CUS-000009",
    ]
    assert len(where({"field": "customer_code", "method": "nin", "value": ["CUS-000002"]})) == 59
    assert len(where({"field": "erp_customer_no", "method": "empty"})) == 60
    assert where({"field": "customer_code", "method": "eq", "value": ["CUS-000004"]}) == ["CUS-000004"]
    either = where(
        {"field": "customer_code", "method": "eq", "value": ["CUS-000004"]},
        {"field": "customer_code", "method": "eq", "value": ["CUS-000005"]},
        rel="or",
    )
    assert either == ["CUS-000004", "CUS-000005"]
    fields = call(client, "data/list", limit=1, fields=["customer_code"]).json()["data"][0]
    assert set(fields) == {"_id", "customer_code"}
    bad = call(client, "data/list", filter={"cond": []})
    assert bad.status_code == 400 and bad.json()["code"] == 4815
    too_many = {
        "rel": "and",
        "cond": [{"field": "customer_code", "method": "in", "value": [str(i) for i in range(201)]}],
    }
    assert call(client, "data/list", filter=too_many).json()["code"] == 4815


def test_batch_create_limits_and_transaction_replay(served: tuple[SandboxApp, httpx.Client]) -> None:
    sandbox, client = served
    over = call(client, "data/batch_create", data_list=[{"customer_code": {"value": "X"}}] * 101)
    assert over.status_code == 400 and over.json()["code"] == 17024
    assert call(client, "data/batch_create", data_list=[{}], transaction_id="not-a-uuid").json()["code"] == 17025
    data_list = [{"customer_code": {"value": "TX-1"}}, {"customer_code": {"value": "TX-2"}}]
    first = call(client, "data/batch_create", data_list=data_list, transaction_id=TX).json()
    again = call(client, "data/batch_create", data_list=data_list, transaction_id=TX).json()
    assert first["status"] == "success" and first["success_count"] == 2
    assert again == first
    assert len(sandbox.state.find("customer_form", "customer_code", "TX-1")) == 1
    created = sandbox.state.get("customer_form", first["success_ids"][0])
    assert created["createTime"] == created["updateTime"]
    # A record with a wrongly typed value is skipped, the rest lands.
    mixed = [{"customer_code": {"value": "MX-1"}}, {"outstanding_balance": {"value": "abc"}}]
    assert call(client, "data/batch_create", data_list=mixed).json()["success_count"] == 1


def test_updates(served: tuple[SandboxApp, httpx.Client]) -> None:
    sandbox, client = served
    order = list_all(client, "sales_order_form")[0]
    keep = order["lines"][0]
    data = {
        "remark": {"value": "改期"},
        "lines": {
            "value": [
                {"_id": {"value": keep["_id"]}, "sku": {"value": keep["sku"]}, "qty": {"value": 9}},
                {"sku": {"value": "P-1001"}, "qty": {"value": 1}},
            ]
        },
    }
    updated = call(client, "data/update", "sales_order_form", data_id=order["_id"], data=data).json()["data"]
    assert updated["remark"] == "改期" and len(updated["lines"]) == 2
    assert updated["lines"][0]["_id"] == keep["_id"] and updated["lines"][1]["_id"] != keep["_id"]
    assert updated["updateTime"] >= order["updateTime"]
    missing = call(client, "data/update", data_id="0" * 24, data={})
    assert missing.status_code == 400 and missing.json()["code"] == 4001
    ids = [r["_id"] for r in list_all(client, "customer_form")[:3]]
    sub = call(client, "data/batch_update", "sales_order_form", data_ids=[order["_id"]], data={"lines": {"value": []}})
    assert sub.json()["code"] == 17032
    ok = call(client, "data/batch_update", data_ids=[*ids, "0" * 24], data={"account_status": {"value": "paid"}})
    assert ok.json() == {"status": "success", "success_count": 3}
    assert all(sandbox.state.get("customer_form", i)["account_status"] == "paid" for i in ids)
    assert call(client, "data/batch_update", data_ids=["x"] * 101, data={}).json()["code"] == 17023


def test_control_hooks_touch_seed_and_clock(served: tuple[SandboxApp, httpx.Client]) -> None:
    sandbox, client = served
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    r = client.post(
        "/__sandbox__/jiandaoyun/touch",
        json={"entry_id": "customer_form", "keys": ["CUS-000042"], "at": at.isoformat()},
    )
    assert r.json()["touched"] == 1
    [row] = sandbox.state.find("customer_form", "customer_code", "CUS-000042")
    assert row["updateTime"] == "2026-01-02T03:04:05.678Z"
    seeded = client.post(
        "/__sandbox__/jiandaoyun/seed",
        json={
            "entry_id": "payment_form",
            "at": at.isoformat(),
            "records": [{"receipt_no": f"SKD{i}"} for i in range(5)],
        },
    ).json()["data_ids"]
    assert {sandbox.state.get("payment_form", i)["updateTime"] for i in seeded} == {"2026-01-02T03:04:05.678Z"}
    client.post("/__sandbox__/jiandaoyun/clock", json={"freeze": (at + timedelta(days=1)).isoformat()})
    created = call(client, "data/create", "payment_form", data={"receipt_no": {"value": "SKD-F"}}).json()["data"]
    client.post("/__sandbox__/jiandaoyun/clock", json={"freeze": None})
    assert created["createTime"] == "2026-01-03T03:04:05.678Z"
    assert sandbox.log.count("__sandbox__") == 0, "control calls are not in the request log"


def test_vendor_rate_limits_answer_400_with_code_8304() -> None:
    sandbox = create_sandbox(seed_data=False)
    with SandboxServer(sandbox) as server, httpx.Client(base_url=server.base_url) as client:
        client.headers["Authorization"] = f"Bearer {DEMO_API_KEY}"
        answers = [
            call(client, "data/batch_create", "payment_form", data_list=[{"receipt_no": {"value": str(i)}}])
            for i in range(15)
        ]
    throttled = [a for a in answers if a.json().get("code") == 8304]
    assert throttled and all(a.status_code == 400 for a in throttled)
    accepted = [e.at for e in sandbox.log.entries("data/batch_create") if e.status == 200]
    assert max_in_window(accepted, 1.0) <= 10
