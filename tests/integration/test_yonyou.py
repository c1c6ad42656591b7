"""The yonyou connector against the Yonyou sandbox on loopback."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from erphub.connectors.base import SystemContext
from erphub.connectors.yonyou import YonyouConnector, YonyouSettings
from erphub.core.errors import AuthError
from erphub.core.records import Cursor, Page, Record, WriteAction, WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.faults import max_in_window
from erphub.sandbox.yonyou import YonyouStore, create_sandbox

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
_names = itertools.count()


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    sb = create_sandbox()
    with SandboxServer(sb) as server:
        yield sb, server


def connect(
    server: SandboxServer,
    *,
    secret: str = "yonyou_demo_app_secret",
    rate: float | None = 500.0,
    **overrides: Any,
) -> YonyouConnector:
    settings = YonyouSettings(
        tenant_id="demo_tenant",
        app_key="yonyou_demo_app_key",
        app_secret=SecretStr(secret),
        discovery_url=server.base_url,
        **overrides,
    )
    # A unique system name per connector: rate limiters are shared per system name.
    context = SystemContext(
        name=f"yonyou-it-{next(_names)}",
        rate_limit_per_second=rate,
        max_attempts=4,
        max_retry_seconds=5,
        read_timeout_s=5,
    )
    return YonyouConnector(settings, context)


def read_all(
    conn: YonyouConnector, entity: str, since: Cursor | None = None, page_size: int = 4
) -> tuple[list[Record], list[Page]]:
    pages = list(conn.read_changes(entity, since, page_size=page_size))
    return [r for p in pages for r in p.records], pages


def seed_customers(store: YonyouStore, stamps: list[datetime]) -> list[str]:
    return [
        str(store.seed_customer(f"C-{i:04d}-{uuid.uuid4().hex[:6]}", f"客户{i}", pubts=stamp)["id"])
        for i, stamp in enumerate(stamps)
    ]


def order(code: str, customer: str, lines: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "vouchdate": "2026-03-01 00:00:00",
        "salesOrgId": "100",
        "transactionTypeId": "SO01",
        "agentId": customer,
        "orderPrices!currency": "CNY",
        "orderDetails": [
            {
                "productId": f"1.01.{n + 1:03d}",
                "qty": n + 1,
                "oriTaxUnitPrice": 10.5,
                "masterUnitId": "Pcs",
                "taxId": "VAT13",
            }
            for n in range(lines)
        ],
        **extra,
    }


def req(n: int, key: str, data: dict[str, Any], idem: str | None = None) -> WriteRequest:
    return WriteRequest(
        source_id=f"src-{n}",
        key=key,
        target_id=None,
        data=data,
        idempotency_key=idem or f"it:{key}:{uuid.uuid4().hex}",
    )


def test_customer_reads_are_exactly_once_across_pages_and_shared_seconds(sandbox: Any) -> None:
    sb, server = sandbox
    # 3 singles, then 9 customers in one second (more than two pages of 4), then 2 more.
    stamps = (
        [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
        + [T0 + timedelta(seconds=3)] * 9
        + [T0 + timedelta(seconds=4), T0 + timedelta(seconds=5)]
    )
    ids = seed_customers(sb.state, stamps)
    with closing(connect(server)) as conn:
        records, pages = read_all(conn, "customer")
        assert [r.id for r in records] == ids
        assert all(p.checkpoint == p.records[-1].cursor() for p in pages)
        assert records[0].data["name"] == "客户0" and records[0].updated_at == T0

        # Resuming from the checkpoint in the middle of the shared second misses nothing.
        middle = records[5].cursor()
        rest, _ = read_all(conn, "customer", middle)
        assert [r.id for r in rest] == ids[6:]
        # Nothing new after the end; then one change comes back alone.
        again, pages = read_all(conn, "customer", records[-1].cursor())
        assert again == [] and pages == [Page([], None)]
        sb.state.set_pubts("customer", [int(ids[0])], T0 + timedelta(minutes=1))
        changed, _ = read_all(conn, "customer", records[-1].cursor())
        assert [r.id for r in changed] == [ids[0]]


def test_page_exactly_full_and_until_bound(sandbox: Any) -> None:
    sb, server = sandbox
    ids = seed_customers(sb.state, [T0 + timedelta(seconds=i) for i in range(8)])
    with closing(connect(server)) as conn:
        records, pages = read_all(conn, "customer", page_size=4)
        assert [r.id for r in records] == ids and [len(p.records) for p in pages] == [4, 4]
        bounded = list(conn.read_changes("customer", None, page_size=3, until=records[4].cursor()))
        assert [r.id for p in bounded for r in p.records] == ids[:5]


def test_orders_are_regrouped_from_line_rows_even_across_page_boundaries(sandbox: Any) -> None:
    sb, server = sandbox
    sb.state.seed_customer("CUS-1", "订单客户")
    with closing(connect(server)) as conn:
        batch = [req(n, f"SO-{n}", order(f"SO-{n}", "CUS-1", lines=n % 4 + 1)) for n in range(7)]
        results = conn.write("sales_order", batch)
        assert all(r.ok and r.action is WriteAction.CREATED for r in results), results
        for page_size in (1, 2, 3, 5, 100):
            records, _ = read_all(conn, "sales_order", page_size=page_size)
            assert [r.data["code"] for r in records] == [f"SO-{n}" for n in range(7)], page_size
            for n, record in enumerate(records):
                lines = record.data["orderDetails"]
                assert [line["productId"] for line in lines] == [
                    f"1.01.{i + 1:03d}" for i in range(n % 4 + 1)
                ]
                assert record.data["agentId"] == "CUS-1" and record.data["orderPrices!currency"] == "CNY"
                assert record.data["payMoney"] == sum(line["oriSum"] for line in lines)


def test_order_write_is_idempotent_by_resubmit_key_and_code(sandbox: Any) -> None:
    sb, server = sandbox
    sb.state.seed_customer("CUS-1", "订单客户")
    with closing(connect(server)) as conn:
        first = req(1, "SO-IDEM", order("SO-IDEM", "CUS-1"), idem="pipe:1:aaaa")
        # The answer of the first save is lost: the client retries with the same resubmitCheckKey.
        sb.faults.lose_next_response("voucherorder/singleSave")
        [result] = conn.write("sales_order", [first])
        assert result.ok
        assert sb.log.count("voucherorder/singleSave") == 2  # the lost one and its retry
        assert sb.state.order_count_with_code("SO-IDEM") == 1
        # A crashed run writes it again (no target id known): found by code, updated in place.
        [again] = conn.write(
            "sales_order", [req(1, "SO-IDEM", order("SO-IDEM", "CUS-1", lines=2, memo="v2"))]
        )
        assert again.target_id == result.target_id and again.action is WriteAction.UPDATED
        assert sb.state.order_count_with_code("SO-IDEM") == 1
        detail = sb.state.order_detail(result.target_id)
        assert detail["memo"] == "v2" and len(detail["orderDetails"]) == 2


def test_customer_lost_answer_does_not_duplicate_and_bad_record_fails_alone(sandbox: Any) -> None:
    sb, server = sandbox
    with closing(connect(server)) as conn:
        sb.faults.lose_next_response("merchant/save")
        good = {"name": "好客户", "createOrg": "100", "customerClass": "KA"}
        batch = [
            req(1, "CUS-A", {"code": "CUS-A", **good}),
            req(2, "CUS-B", {"code": "CUS-B", **good, "customerClass": "NOPE"}),
            req(3, "CUS-C", {"code": "CUS-C", **good, "name": {"zh_CN": "多语客户", "en_US": "Multi"}}),
        ]
        results = conn.write("customer", batch)
        assert results[0].ok and results[0].action is WriteAction.CREATED
        assert [e.status for e in sb.log.entries("merchant/save")][:2] == [None, 200]  # lost, then re-saved
        assert not results[1].ok and results[1].error is not None and "NOPE" in results[1].error.message
        assert results[2].ok
        assert sb.state.count_customers_with_code("CUS-A") == 1
        assert sb.state.count_customers_with_code("CUS-B") == 0
        assert conn.lookup("customer", ["CUS-A", "CUS-B", "CUS-C"]) == {
            "CUS-A": results[0].target_id,
            "CUS-C": results[2].target_id,
        }
        stored = sb.state.customer_detail(results[2].target_id)
        assert stored["name"] == {"zh_CN": "多语客户", "en_US": "Multi"}


def test_token_is_renewed_when_the_server_forgets_it(sandbox: Any) -> None:
    sb, server = sandbox
    seed_customers(sb.state, [T0, T0])
    with closing(connect(server)) as conn:
        conn.check()
        assert conn.auth.logins == 1
        sb.extra["tokens"].expire_all()
        records, _ = read_all(conn, "customer")
        assert len(records) == 2 and conn.auth.logins == 2
        sb.faults.expire_session(1, endpoint="merchant/newlist")
        conn.check()
        assert conn.auth.logins == 3


def test_short_token_lifetime_is_renewed_before_expiry() -> None:
    sb = create_sandbox(token_ttl_s=1)
    with SandboxServer(sb) as server, closing(connect(server)) as conn:
        conn.check()
        assert conn.auth.leeway_s == pytest.approx(0.2)
        time.sleep(0.85)  # inside the renewal window (last fifth of the lifetime), not yet expired
        conn.check()
        assert conn.auth.logins == 2
        # Renewed before use: the server never had to refuse a stale token (no retried business call).
        assert sb.log.count("getAccessToken") == 2
        assert sb.log.count("merchant/newlist") == 2


def test_wrong_secret_is_an_auth_error_that_names_no_secret(sandbox: Any) -> None:
    _, server = sandbox
    with closing(connect(server, secret="wrong-secret-value")) as conn, pytest.raises(AuthError) as err:
        conn.check()
    assert "wrong-secret-value" not in str(err.value)


def test_client_rate_stays_under_the_servers_limit() -> None:
    sb = create_sandbox(calls_per_second=20)
    with SandboxServer(sb) as server, closing(connect(server, rate=18)) as conn:
        for _ in range(30):
            conn.check()
        business = [e for e in sb.log.entries() if "/iuap-api-gateway/" in e.path]
        assert all(e.status == 200 for e in business)
        assert max_in_window([e.at for e in sb.log.entries()], 1.0) <= 20


def test_receipts_write_and_read(sandbox: Any) -> None:
    sb, server = sandbox
    sb.state.seed_customer("CUS-1", "收款客户")
    with closing(connect(server, receipt_path="/yonbip/fi/receivebill")) as conn:
        data = {
            "code": "RC-1",
            "vouchdate": "2026-03-02 10:00:00",
            "customer": "CUS-1",
            "currency": "CNY",
            "oriSum": 1200.5,
            "settleMode": "02",
            "srcBillNo": "SO-1",
        }
        [created] = conn.write("receipt", [req(1, "RC-1", data, idem="p:r1:1")])
        [same] = conn.write("receipt", [req(1, "RC-1", data, idem="p:r1:1")])
        assert created.ok and same.target_id == created.target_id
        records, _ = read_all(conn, "receipt")
        assert [(r.data["code"], r.data["customer"], r.data["oriSum"]) for r in records] == [
            ("RC-1", "CUS-1", 1200.5)
        ]


def test_unknown_path_is_permanent_and_entities_are_declared(sandbox: Any) -> None:
    _, server = sandbox
    with closing(connect(server, receipt_path="/yonbip/nowhere")) as conn:
        specs = conn.entities()
        assert specs["sales_order"].child_fields["orderDetails"] >= {"productId", "qty", "oriTaxUnitPrice"}
        assert specs["customer"].key_field == "code"
        from erphub.core.errors import PermanentError

        with pytest.raises(PermanentError, match="310404"):
            list(conn.read_changes("receipt", None))
