"""The kingdee connector against the Kingdee sandbox on loopback."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from erphub.connectors.base import SystemContext
from erphub.connectors.kingdee import KingdeeConnector, KingdeeSettings
from erphub.core.errors import AuthError
from erphub.core.records import Cursor, Page, WriteAction, WriteRequest
from erphub.monitoring import metrics
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.kingdee import create_sandbox, endpoint

STAMP = datetime(2026, 3, 1, 9, 0, 0, 123000)  # Kingdee local time


@dataclass
class Env:
    sandbox: SandboxApp
    server: SandboxServer

    @property
    def store(self) -> Any:
        return self.sandbox.state.store

    def connector(self, *, name: str = "kd-test", rate: float | None = 500.0, **settings: Any) -> KingdeeConnector:
        creds = self.sandbox.credentials
        values: dict[str, Any] = {
            "server_url": f"{self.server.base_url}/k3cloud", "acct_id": creds["acct_id"],
            "username": creds["username"], "password": creds["password"], **settings,
        }
        context = SystemContext(name=name, rate_limit_per_second=rate, read_timeout_s=5.0, max_attempts=5,
                                max_retry_seconds=20.0, secrets=(creds["password"], creds["app_secret"]))
        return KingdeeConnector(KingdeeSettings.model_validate(values), context)


@pytest.fixture()
def env() -> Iterator[Env]:
    sandbox = create_sandbox(seed_customers=0, seed_receipts=0)
    with SandboxServer(sandbox) as server:
        yield Env(sandbox, server)


@pytest.fixture()
def kd(env: Env) -> Iterator[KingdeeConnector]:
    connector = env.connector()
    yield connector
    connector.close()


def seed_customers(env: Env, count: int, *, stamp: datetime = STAMP, prefix: str = "C") -> list[str]:
    return [str(env.store.insert("BD_Customer", {
        "FNumber": f"{prefix}-{n:04d}", "FName": f"客户{n}", "FCreateOrgId": {"FNumber": "100"},
        "FTRADINGCURRID": {"FNumber": "PRE001"}}, modify_date=stamp)) for n in range(count)]


def seed_order(env: Env, number: str, lines: int, *, stamp: datetime = STAMP) -> str:
    return str(env.store.insert("SAL_SaleOrder", {
        "FBillNo": number, "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01",
        "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": "C-0000"}, "FSalerId": {"FNumber": "S001"},
        "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
        "FSaleOrderEntry": [{"FMaterialId": {"FNumber": f"1.01.{i % 20 + 1:03d}"}, "FUnitID": {"FNumber": "Pcs"},
                             "FQty": i + 1, "FTaxPrice": 2} for i in range(lines)],
    }, modify_date=stamp))


def ids_of(pages: list[Page]) -> list[str]:
    return [r.id for p in pages for r in p.records]


def customer(n: int, key: str, **extra: Any) -> WriteRequest:
    data = {"FNumber": key, "FName": f"写入客户{n}", "FTRADINGCURRID": {"FNumber": "PRE001"}, "FTEL": "021-5555",
            **extra}
    return WriteRequest(source_id=f"s{n}", key=key, target_id=None, data=data, idempotency_key=f"k{n}")


# ---- reading ----------------------------------------------------------------------------------


def test_many_records_sharing_one_modify_date_across_page_boundaries(env: Env, kd: KingdeeConnector) -> None:
    ids = seed_customers(env, 23)
    pages = list(kd.read_changes("customer", None, page_size=5))
    assert [len(p.records) for p in pages] == [5, 5, 5, 5, 3]
    assert ids_of(pages) == ids  # each exactly once, in (FModifyDate, FCUSTID) order
    assert all(p.checkpoint == p.records[-1].cursor() for p in pages)
    # Resuming from any checkpoint yields exactly the rest, even though all share one timestamp.
    rest = list(kd.read_changes("customer", pages[1].checkpoint, page_size=5))
    assert ids_of(rest) == ids[10:]
    # A page exactly full, then nothing more: no extra empty page; nothing new: one empty page.
    exact = list(kd.read_changes("customer", pages[3].checkpoint, page_size=3))
    assert ids_of(exact) == ids[20:] and len(exact) == 1
    assert [(list(p.records), p.checkpoint) for p in kd.read_changes("customer", pages[-1].checkpoint)] == [([], None)]


def test_until_bounds_the_read(env: Env, kd: KingdeeConnector) -> None:
    early = seed_customers(env, 3, stamp=STAMP, prefix="E")
    seed_customers(env, 2, stamp=STAMP.replace(hour=10), prefix="L")
    first = next(iter(kd.read_changes("customer", None)))
    until = Cursor(first.records[2].updated_at, "\uffff")
    assert ids_of(list(kd.read_changes("customer", None, until=until))) == early


def test_entry_documents_are_never_split_across_pages(env: Env, kd: KingdeeConnector) -> None:
    seed_customers(env, 1)
    line_counts = [3, 1, 4, 2, 5, 9, 1]
    ids = [seed_order(env, f"SO-{i}", n) for i, n in enumerate(line_counts)]
    pages = list(kd.read_changes("sales_order", None, page_size=4))
    records = [r for p in pages for r in p.records]
    assert [r.id for r in records] == ids
    assert [len(r.data["FSaleOrderEntry"]) for r in records] == line_counts
    big = records[5].data
    assert [line["FQty"] for line in big["FSaleOrderEntry"]] == [float(q) for q in range(1, 10)]
    assert big["FSaleOrderFinance"] == {"FSettleCurrId": {"FNumber": "PRE001"}}
    assert big["FCustId"] == {"FNumber": "C-0000"}
    assert all(p.checkpoint is not None and p.checkpoint.id == p.records[-1].id for p in pages)


def test_a_record_saved_during_the_read_skips_nothing(env: Env, kd: KingdeeConnector) -> None:
    ids = seed_customers(env, 12)
    reader = kd.read_changes("customer", None, page_size=4)
    first = next(reader)
    # Save a record of the first page again: with StartRow offsets every later row would shift up one.
    moved = first.records[1]
    env.store.save("BD_Customer", {"FCUSTID": int(moved.id), "FName": "改过的名字"}, ["FName"])
    rest = list(reader)
    assert ids_of(rest) == ids[4:]  # nothing skipped: the read goes by the ids it found changed
    assert first.records[1].data["FName"] == "客户1"
    # The change is after the read's checkpoint: the next read from it has it.
    again = list(kd.read_changes("customer", rest[-1].checkpoint, page_size=4))
    assert ids_of(again) == [moved.id] and again[0].records[0].data["FName"] == "改过的名字"


def test_receipts_read_with_their_entries() -> None:
    sandbox = create_sandbox(seed_customers=4, seed_receipts=3)
    with SandboxServer(sandbox) as server:
        connector = Env(sandbox, server).connector()
        [page] = list(connector.read_changes("receipt", None))
        connector.close()
    assert [r.data["FCONTACTUNIT"]["FNumber"] for r in page.records] == ["CUS-000001", "CUS-000002", "CUS-000003"]
    first = page.records[0].data
    assert first["FDOCUMENTSTATUS"] == "C" and first["FSETTLECUR"] == {"FNUMBER": "PRE001"}
    assert first["FRECEIVEBILLENTRY"][0]["FRECTOTALAMOUNTFOR"] > 0


# ---- writing ----------------------------------------------------------------------------------


def test_write_one_result_per_record_in_order(env: Env, kd: KingdeeConnector) -> None:
    batch = [
        customer(1, "W-1"),
        customer(2, "W-2", FTRADINGCURRID={"FNumber": "XXX"}),
        customer(3, "W-3", FGroup={"FNumber": "KA"}),
    ]
    results = kd.write("customer", batch)
    assert [r.source_id for r in results] == ["s1", "s2", "s3"]
    assert results[0].ok and results[0].action is WriteAction.CREATED
    assert results[2].ok and results[2].action is WriteAction.CREATED
    assert not results[1].ok and results[1].error is not None
    assert results[1].error.field == "FTRADINGCURRID" and "XXX" in results[1].error.message
    assert not results[1].error.transient
    created = env.store.get("BD_Customer", doc_id=results[2].target_id)
    model = env.store.to_model("BD_Customer", created)
    assert model["FGroup"] == {"FNumber": "KA"}
    assert model["FCreateOrgId"] == {"FNumber": "100"}  # the configured org, filled on create


def test_existing_keys_update_only_owned_fields(env: Env, kd: KingdeeConnector) -> None:
    [first] = kd.write("customer", [customer(1, "OWN-1", FTEL="021-1111")])
    request = customer(1, "own-1", FName="新名字", FTEL="999")  # case differs: Kingdee codes fold case
    owned = WriteRequest(request.source_id, request.key, None, request.data, "k", frozenset({"FName"}))
    [second] = kd.write("customer", [owned])
    assert second.ok and second.action is WriteAction.UPDATED and second.target_id == first.target_id
    model = env.store.to_model("BD_Customer", env.store.get("BD_Customer", doc_id=first.target_id))
    assert model["FName"] == "新名字" and model["FTEL"] == "021-1111"
    assert env.store.count_number("BD_Customer", "OWN-1") == 1
    assert kd.lookup("customer", ["OWN-1", "own-1", "NOPE"]) == {"OWN-1": first.target_id, "own-1": first.target_id}


def test_a_lost_write_response_never_duplicates(env: Env, kd: KingdeeConnector) -> None:
    env.sandbox.faults.lose_next_response(endpoint("BatchSave"))
    results = kd.write("customer", [customer(1, "LOST-1"), customer(2, "LOST-2")])
    assert all(r.ok for r in results)
    assert [env.store.count_number("BD_Customer", k) for k in ("LOST-1", "LOST-2")] == [1, 1]
    # The resent creates were refused as "number exists" and resolved to updates of the same records.
    assert {r.action for r in results} == {WriteAction.UPDATED}
    assert kd.lookup("customer", ["LOST-1"])["LOST-1"] == results[0].target_id


def test_number_exists_is_resolved_to_an_update(env: Env, kd: KingdeeConnector) -> None:
    # Another writer creates the same number between the connector's lookup and its save: the save
    # answers "already exists", and the connector looks the key up again and updates that record.
    rival: list[str] = []

    def concurrent_writer(form_id: str, model: Any) -> None:
        if not rival and form_id == "BD_Customer":
            rival.extend(seed_customers(env, 1, prefix="RACE"))

    env.store.before_save = concurrent_writer
    results = kd.write("customer", [customer(1, "RACE-0000", FName="并发写入")])
    assert results[0].ok and results[0].target_id == rival[0] and results[0].action is WriteAction.UPDATED
    assert env.store.count_number("BD_Customer", "RACE-0000") == 1
    assert env.store.get("BD_Customer", doc_id=rival[0])["FName"] == "并发写入"


def test_sales_orders_with_lines_and_auto_submit_audit(env: Env) -> None:
    seed_customers(env, 1)
    kd = env.connector(auto_submit_audit=["sales_order"])
    order = {
        "FBillNo": "SO-2026-00017", "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01 10:30:00",
        "FCustId": {"FNumber": "C-0000"}, "FSalerId": {"FNumber": "S003"}, "FNote": "首单",
        "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
        "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "1.01.001"}, "FUnitID": {"FNumber": "Pcs"}, "FQty": 3,
                             "FTaxPrice": 18.5, "FEntryTaxRate": 13, "FAllAmount": 55.5}],
    }
    sent = copy.deepcopy(order)
    [created] = kd.write("sales_order", [WriteRequest("o1", "SO-2026-00017", None, order, "k1")])
    assert created.ok and created.action is WriteAction.CREATED
    assert order == sent  # the request's data (the link keeps it) is never changed by the write
    doc = env.store.get("SAL_SaleOrder", doc_id=created.target_id)
    assert doc["FDocumentStatus"] == "C"
    # An update of an audited order: UnAudit, save, Submit, Audit again.
    changed = {**order, "FNote": "改为分批发货"}
    sent = copy.deepcopy(changed)
    [updated] = kd.write("sales_order", [WriteRequest("o1", "SO-2026-00017", created.target_id, changed, "k2",
                                                      target_meta=created.target_meta)])
    assert updated.ok and updated.action is WriteAction.UPDATED, updated.error
    assert changed == sent
    doc = env.store.get("SAL_SaleOrder", doc_id=created.target_id)
    assert doc["FNote"] == "改为分批发货" and doc["FDocumentStatus"] == "C"
    [record] = next(iter(kd.read_changes("sales_order", None))).records
    assert record.data["FSaleOrderEntry"][0]["FMaterialId"] == {"FNumber": "1.01.001"}
    kd.close()


def test_audited_documents_fail_alone_without_auto_audit(env: Env, kd: KingdeeConnector) -> None:
    [first] = kd.write("customer", [customer(1, "AUD-1")])
    env.store.change_status("BD_Customer", "Submit", None, first.target_id)
    env.store.change_status("BD_Customer", "Audit", None, first.target_id)
    results = kd.write("customer", [customer(1, "AUD-1", FName="x"), customer(2, "AUD-2")])
    assert results[0].error is not None and results[0].error.code == "audited"
    assert results[1].ok


# ---- auth, throttling, check --------------------------------------------------------------------


def test_session_loss_mid_run_logs_in_again(env: Env, kd: KingdeeConnector) -> None:
    seed_customers(env, 9)
    reader = kd.read_changes("customer", None, page_size=3)
    first = next(reader)
    env.sandbox.state.sessions.expire_all()
    rest = list(reader)
    assert len(first.records) + sum(len(p.records) for p in rest) == 9
    assert kd.auth.logins == 2
    env.sandbox.faults.expire_session(1)
    assert kd.write("customer", [customer(1, "RELOG-1")])[0].ok
    assert kd.auth.logins == 3


@pytest.mark.parametrize("mode", ["app_secret", "sign"])
def test_app_secret_and_sign_logins(env: Env, mode: str) -> None:
    creds = env.sandbox.credentials
    kd = env.connector(auth_mode=mode, app_id=creds["app_id"], app_secret=creds["app_secret"], password=None)
    kd.check()
    assert kd.auth.logins == 1
    kd.close()


def test_wrong_password_is_an_auth_error_without_the_secret(env: Env) -> None:
    kd = env.connector(password="Wr0ng-Secret-Value")
    kd.http.context.secrets = ("Wr0ng-Secret-Value",)
    with pytest.raises(AuthError) as caught:
        kd.check()
    assert "Wr0ng-Secret-Value" not in str(caught.value)
    assert "用户名或密码错误" in str(caught.value)
    kd.close()


def test_msgcode_14_throttle_is_backed_off_and_counted() -> None:
    sandbox = create_sandbox(seed_customers=6, seed_receipts=0, calls_per_second=2)
    with SandboxServer(sandbox) as server:
        env = Env(sandbox, server)
        kd = env.connector(name="kd-throttle", rate=None)
        before = metrics.rate_limited_total.labels(system="kd-throttle")._value.get()
        pages = list(kd.read_changes("customer", None, page_size=2))
        kd.close()
    assert sum(len(p.records) for p in pages) == 6
    assert metrics.rate_limited_total.labels(system="kd-throttle")._value.get() > before


def test_check_reports_an_unreachable_server() -> None:
    settings = KingdeeSettings.model_validate({"server_url": "http://127.0.0.1:9/k3cloud", "acct_id": "a",
                                               "username": "u", "password": "p"})
    context = SystemContext(name="kd-down", max_attempts=2, max_retry_seconds=1.0, connect_timeout_s=0.5)
    kd = KingdeeConnector(settings, context)
    with pytest.raises(Exception, match="connect"):
        kd.check()
    kd.close()


def test_entities_declare_the_shared_schema(kd: KingdeeConnector) -> None:
    specs = kd.entities()
    assert set(specs) == {"customer", "sales_order", "receipt", "material", "shipment",
                          "order_shipment", "customer_account"}
    assert {d.value for d in specs["order_shipment"].directions} == {"read"}  # computed views are read only
    order = specs["sales_order"]
    assert order.native_name == "SAL_SaleOrder" and order.key_field == "FBillNo"
    assert {"FID", "FBillNo", "FSaleOrderEntry", "FSaleOrderFinance"} <= set(order.fields or ())
    assert "FMaterialId" in order.child_fields["FSaleOrderEntry"]
    assert specs["receipt"].child_fields["FRECEIVEBILLENTRY"] >= {"FRECTOTALAMOUNTFOR", "FSALEORDERNO"}
