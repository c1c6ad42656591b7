"""The salesforce connector against the Salesforce sandbox on loopback."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from erphub.connectors.base import SystemContext
from erphub.connectors.salesforce import SalesforceConnector, SalesforceSettings
from erphub.connectors.salesforce import connector as sf_connector
from erphub.core.errors import AuthError, RateLimitedError
from erphub.core.records import Cursor, Record, WriteAction, WriteRequest, WriteResult
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.salesforce import create_sandbox
from erphub.sandbox.salesforce.store import SalesforceOrg

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
_names = itertools.count()


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    sb = create_sandbox(min_batch_size=1)
    with SandboxServer(sb) as server:
        yield sb, server


def connect(server: SandboxServer, **overrides: Any) -> SalesforceConnector:
    values: dict[str, Any] = {
        "login_url": server.base_url,
        "client_id": "sf_demo_client_id",
        "client_secret": SecretStr("sf_demo_client_secret"),
    }
    values.update(overrides)
    context = SystemContext(name=f"sf-it-{next(_names)}", max_attempts=3, max_retry_seconds=5, read_timeout_s=5)
    return SalesforceConnector(SalesforceSettings(**values), context)


def seed_accounts(org: SalesforceOrg, stamps: list[datetime], prefix: str = "ACC") -> list[str]:
    return [
        org.seed("Account", {"Name": f"客户{i}", "CRM_Code__c": f"{prefix}-{i:04d}"}, modstamp=stamp)
        for i, stamp in enumerate(stamps)
    ]


def read_all(conn: SalesforceConnector, entity: str, since: Cursor | None = None, page_size: int = 3) -> list[Record]:
    return [r for p in conn.read_changes(entity, since, page_size=page_size) for r in p.records]


def req(n: int, key: str, data: dict[str, Any]) -> WriteRequest:
    return WriteRequest(source_id=f"src-{n}", key=key, target_id=None, data=data, idempotency_key=f"k-{n}")


def test_incremental_read_exactly_once_with_shared_timestamps(sandbox: Any) -> None:
    sb, server = sandbox
    stamps = [T0, T0 + timedelta(milliseconds=1)] + [T0 + timedelta(seconds=1)] * 7 + [T0 + timedelta(seconds=2)]
    ids = seed_accounts(sb.state, stamps)
    with closing(connect(server)) as conn:
        pages = list(conn.read_changes("customer", None, page_size=3))
        assert [len(p.records) for p in pages] == [3, 3, 3, 1]
        records = [r for p in pages for r in p.records]
        assert [r.id for r in records] == ids
        assert records[0].data["CRM_Code__c"] == "ACC-0000" and records[0].updated_at == T0
        assert "attributes" not in records[0].data
        # The batches really came through nextRecordsUrl (batchSize=3 on the sandbox).
        assert sb.log.count("query") == 1 and len(sb.log.entries()) >= 4
        # Resume inside the group sharing one timestamp.
        assert [r.id for r in read_all(conn, "customer", records[4].cursor())] == ids[5:]
        assert read_all(conn, "customer", records[-1].cursor()) == []
        until = list(conn.read_changes("customer", None, page_size=4, until=records[3].cursor()))
        assert [r.id for p in until for r in p.records] == ids[:4]


def test_upsert_collections_are_idempotent_and_fail_per_record(sandbox: Any) -> None:
    sb, server = sandbox
    with closing(connect(server)) as conn:
        batch = [req(n, f"CUS-{n}", {"Name": f"客户{n}", "Phone": "123"}) for n in range(250)]
        batch[7] = req(7, "CUS-7", {"Name": "x" * 300})
        results = conn.write("customer", batch)
        assert len(results) == 250
        assert sum(r.ok for r in results) == 249 and results[7].error is not None
        assert results[7].error.code == "STRING_TOO_LONG" and results[7].error.field == "Name"
        assert all(r.action is WriteAction.CREATED for i, r in enumerate(results) if i != 7)
        # Two collection calls (200 + 49 records sent, the bad one included).
        assert sb.log.count("composite/sobjects/Account/CRM_Code__c") == 2
        # The answer of a write is lost: the retry upserts the same records again, no duplicates.
        sb.faults.lose_next_response("composite/sobjects/Account/CRM_Code__c")
        again = conn.write("customer", [req(1, "CUS-1", {"Name": "改名"}), req(900, "CUS-900", {"Name": "新"})])
        assert [r.ok for r in again] == [True, True]
        assert [e.status for e in sb.log.entries("composite/sobjects/Account/CRM_Code__c")][-2:] == [None, 200]
        assert again[0].target_id == results[1].target_id
        assert sb.state.count("Account", "CRM_Code__c", "CUS-900") == 1
        assert sb.state.get("Account", again[0].target_id or "")["Name"] == "改名"
        assert conn.lookup("customer", ["CUS-1", "CUS-900", "NOPE"]) == {
            "CUS-1": results[1].target_id,
            "CUS-900": again[1].target_id,
        }


def test_orders_with_items_round_trip(sandbox: Any) -> None:
    sb, server = sandbox
    sb.state.seed("Account", {"Name": "订单客户", "CRM_Code__c": "CUS-1"})
    order = {
        "Account": {"CRM_Code__c": "CUS-1"},
        "EffectiveDate": "2026-03-01",
        "Status": "Draft",
        "CurrencyIsoCode": "CNY",
        "items": [
            {"Product2": {"SKU__c": "P-1001"}, "Quantity": 2, "UnitPrice": 18.5},
            {"Product2": {"SKU__c": "P-1003"}, "Quantity": 1, "UnitPrice": 1980},
        ],
    }
    bad = {**order, "items": [{"Product2": {"SKU__c": "P-9999"}, "Quantity": 1, "UnitPrice": 1}]}
    with closing(connect(server)) as conn:
        results = conn.write("sales_order", [req(1, "SO-1", order), req(2, "SO-2", bad)])
        assert results[0].ok and results[0].action is WriteAction.CREATED
        assert results[1].error is not None and "P-9999" in results[1].error.message
        [first] = [r for r in read_all(conn, "sales_order", page_size=10) if r.data["Order_No__c"] == "SO-1"]
        assert first.data["Account"] == {"CRM_Code__c": "CUS-1"} and first.data["TotalAmount"] == 2017.0
        assert [(i["Product2"]["SKU__c"], i["Quantity"], i["Line_Key__c"]) for i in first.data["items"]] == [
            ("P-1001", 2.0, "SO-1#1"),
            ("P-1003", 1.0, "SO-1#2"),
        ]
        # Writing the same order again updates header and items in place.
        again = conn.write("sales_order", [req(1, "SO-1", order)])
        assert again[0].action is WriteAction.UPDATED
        assert sb.state.count("OrderItem", "OrderId", results[0].target_id) == 2


def test_session_expiry_and_renewal(sandbox: Any) -> None:
    sb, server = sandbox
    seed_accounts(sb.state, [T0])
    with closing(connect(server)) as conn:
        conn.check()
        sb.extra["sessions"].expire_all()
        assert len(read_all(conn, "customer")) == 1
        assert conn.auth.logins == 2
        assert [e.status for e in sb.log.entries("query")][-2:] == [401, 200]


@pytest.mark.parametrize(
    "grant,extra",
    [
        (
            "password",
            {
                "username": "integration@erphub.example",
                "password": SecretStr("sf_demo_password"),
                "security_token": SecretStr("sf_demo_token"),
            },
        ),
        ("refresh_token", {"refresh_token": SecretStr("sf_demo_refresh_token")}),
    ],
)
def test_other_grants(sandbox: Any, grant: str, extra: dict[str, Any]) -> None:
    _, server = sandbox
    with closing(connect(server, grant=grant, **extra)) as conn:
        conn.check()
        assert conn.auth.logins == 1


def test_bad_credentials_are_auth_errors_without_secrets(sandbox: Any) -> None:
    _, server = sandbox
    with closing(connect(server, client_secret=SecretStr("not-the-secret-1"))) as conn, pytest.raises(AuthError) as err:
        conn.check()
    assert "not-the-secret-1" not in str(err.value)


def test_used_up_allocation_is_rate_limited_not_auth() -> None:
    sb = create_sandbox(daily_api_limit=3)
    with SandboxServer(sb) as server, closing(connect(server)) as conn:
        for _ in range(3):
            conn.check()
        assert conn.api_usage == (3, 3)
        with pytest.raises(RateLimitedError):
            conn.check()
        assert sb.log.entries("query")[-1].status == 403


def test_concurrent_long_calls_are_waited_out_within_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two slow calls fill an org that allows two long-running ones: the four writes arriving meanwhile
    are refused ("ConcurrentRequests ... Limit exceeded") and land once a slot is free, not failed as a
    used-up daily allocation."""
    monkeypatch.setattr(sf_connector, "CONCURRENT_WAIT_S", 1.0)
    sb = create_sandbox(concurrent_long_requests=2, long_request_s=0.2, request_time_s=1.0)
    path = "composite/sobjects/Account/CRM_Code__c"
    results: dict[int, list[WriteResult]] = {}
    with SandboxServer(sb) as server, closing(connect(server)) as conn:
        conn.check()  # logged in before the clock starts

        def write(n: int) -> None:
            results[n] = conn.write("customer", [req(n, f"CUS-L{n}", {"Name": f"慢客户{n}"})])

        first = [threading.Thread(target=write, args=(n,)) for n in range(2)]
        later = [threading.Thread(target=write, args=(n,)) for n in range(2, 6)]
        for thread in first:
            thread.start()
        time.sleep(0.5)  # the first two have run 0.5 s of their 1 s: both long-running now
        for thread in later:
            thread.start()
        for thread in first + later:
            thread.join(30)
    statuses = [entry.status for entry in sb.log.entries(path)]
    assert statuses.count(403) >= 4, statuses
    assert all(len(r) == 1 and r[0].ok for r in results.values()) and len(results) == 6, results
    org: SalesforceOrg = sb.state
    assert [org.count("Account", "CRM_Code__c", f"CUS-L{n}") for n in range(6)] == [1] * 6


@pytest.mark.parametrize(("message", "wait"), [
    ("ConcurrentRequests (Concurrent API Requests) Limit exceeded.", sf_connector.CONCURRENT_WAIT_S),
    ("ConcurrentPerOrgLongTxn Limit exceeded.", sf_connector.CONCURRENT_WAIT_S),
    ("TotalRequests Limit exceeded.", sf_connector.ALLOCATION_WAIT_S),
    ("a message Salesforce has not documented", sf_connector.ALLOCATION_WAIT_S),
])
def test_request_limit_answers_wait_by_which_limit(message: str, wait: float) -> None:
    response = httpx.Response(403)
    verdict = sf_connector.classify(response, [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    assert verdict is not None and verdict.reason == "rate_limited" and verdict.retry_after is not None
    high = wait * (1 + sf_connector.CONCURRENT_JITTER) if wait == sf_connector.CONCURRENT_WAIT_S else wait
    assert wait <= verdict.retry_after <= high
    assert sf_connector.classify(httpx.Response(403), [{"message": message, "errorCode": "INSUFFICIENT_ACCESS"}]) \
        is None


def test_concurrent_limit_that_outlasts_the_retries_fails_the_call_as_rate_limited(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sf_connector, "CONCURRENT_WAIT_S", 0.05)
    sb = create_sandbox(concurrent_long_requests=0)  # refuses every call, as a saturated org does
    with SandboxServer(sb) as server, closing(connect(server)) as conn, \
            pytest.raises(RateLimitedError) as refused:
        conn.check()
    assert refused.value.retry_after is not None and 0.05 <= refused.value.retry_after <= 0.0625
    assert [entry.status for entry in sb.log.entries("query")] == [403, 403, 403]  # max_attempts=3


def test_on_delete_deletes_the_account_and_fetch_no_longer_sees_it(sandbox: Any) -> None:
    sb, server = sandbox
    org: SalesforceOrg = sb.state
    keep, gone = seed_accounts(org, [datetime(2026, 3, 1, tzinfo=UTC)] * 2, prefix="DEL")
    conn = connect(server)
    try:
        assert conn.delete_modes("customer") == frozenset({"delete"})
        first = conn.delete("customer", [gone], mode="delete")
        again = conn.delete("customer", [gone], mode="delete")
        assert [r.ok for r in first + again] == [True, True], (first, again)
        assert sorted(conn.fetch("customer", [keep, gone])) == [keep]
    finally:
        conn.close()
    assert org.objects["Account"][gone]["IsDeleted"] is True  # in the org's recycle bin
    assert org.objects["Account"][keep]["IsDeleted"] is False
