"""The tryton connector against a REAL trytond 8.2 on 127.0.0.1 (one server for this module).

The first run installs `.venv-tryton` and builds the template (~40 s); after that the server
starts in about a second from a copy of the template.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from erphub.connectors.tryton import TrytonConnector
from erphub.core.errors import AuthError
from erphub.core.records import Cursor, WriteAction, WriteRequest
from tests.contract.harnesses.tryton import TrytonHarness, make_harness

pytestmark = pytest.mark.tryton

T0 = dt.datetime(2026, 2, 1, 9, 30, 0, 250000, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def harness() -> Iterator[TrytonHarness]:
    with make_harness() as h:
        yield h


@pytest.fixture
def conn(harness: TrytonHarness) -> Iterator[TrytonConnector]:
    c = harness.connector()
    assert isinstance(c, TrytonConnector)
    yield c
    c.close()


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def sale_request(key: str, customer: str, lines: list[dict[str, Any]], **extra: Any) -> WriteRequest:
    data = {"reference": key, "customer_code": customer, "sale_date": "2026-03-02", "currency": "CNY",
            "description": "from CRM", "lines": lines, **extra}
    return WriteRequest(source_id=f"src-{key}", key=key, target_id=None, data=data, idempotency_key=key)


def ensure_customer(conn: TrytonConnector, harness: TrytonHarness) -> str:
    code = uid("CUS")
    [res] = conn.write("customer", [harness.write_request(1, key=code)])
    assert res.ok, res.error
    return code


# -- session, auth, check ------------------------------------------------------------------

def test_check_and_wrong_password(harness: TrytonHarness, conn: TrytonConnector) -> None:
    conn.check()
    assert conn.rpc.context["company"] == harness.server.meta["company"]
    bad = harness.connector(password="wrong-Password-123")
    assert isinstance(bad, TrytonConnector)
    with pytest.raises(AuthError) as info:
        bad.check()
    assert "wrong-Password-123" not in str(info.value)
    bad.close()


def test_session_deleted_on_the_server_is_renewed(harness: TrytonHarness, conn: TrytonConnector) -> None:
    conn.check()
    logins = conn.rpc.session.logins
    harness.expire_auth()
    assert conn.lookup("customer", ["NOPE-404"]) == {}
    assert conn.rpc.session.logins == logins + 1


# -- customers -----------------------------------------------------------------------------

def test_customer_batch_isolates_the_bad_record_and_retry_never_duplicates(
        harness: TrytonHarness, conn: TrytonConnector) -> None:
    keys = [uid("CUS") for _ in range(4)]
    batch = [harness.write_request(1, key=keys[0]), harness.bad_write_request(2, key=keys[1]),
             harness.write_request(3, key=keys[2]), harness.write_request(4, key=keys[3])]
    results = conn.write("customer", batch)
    assert [r.source_id for r in results] == [b.source_id for b in batch]
    assert [r.ok for r in results] == [True, False, True, True]
    assert results[1].error is not None and results[1].error.code == "UserError"
    assert [harness.count_with_key(k) for k in keys] == [1, 0, 1, 1]

    again = conn.write("customer", [harness.write_request(1, key=keys[0]), harness.write_request(3, key=keys[2])])
    assert [r.action for r in again] == [WriteAction.UPDATED, WriteAction.UPDATED]
    assert [r.target_id for r in again] == [results[0].target_id, results[2].target_id]
    assert conn.lookup("customer", [keys[0], keys[1]]) == {keys[0]: results[0].target_id}
    assert harness.count_with_key(keys[0]) == 1


def test_customer_shape_round_trip_and_partial_update(harness: TrytonHarness, conn: TrytonConnector) -> None:
    key = uid("CUS")
    data = {"code": key, "name": "上海测试有限公司", "tax_identifier": "91310000MA1FL0XX1C",
            "phone": "021-61234567", "email": "buyer@example.cn", "street": "南京西路 100 号",
            "city": "上海", "postal_code": "200040", "country": "CN"}
    [res] = conn.write("customer", [WriteRequest("s1", key, None, data, "i1")])
    assert res.ok and res.action is WriteAction.CREATED
    since = Cursor(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    records = [r for p in conn.read_changes("customer", since, page_size=50) for r in p.records]
    [mine] = [r for r in records if r.id == res.target_id]
    assert mine.data == {**data, "mobile": None, "subdivision": None}

    [upd] = conn.write("customer", [WriteRequest("s1", key, res.target_id,
                                                 {"code": key, "phone": "021-60000000", "email": ""}, "i2")])
    assert upd.action is WriteAction.UPDATED
    later = [r for p in conn.read_changes("customer", mine.cursor(), page_size=50) for r in p.records]
    [changed] = [r for r in later if r.id == res.target_id]
    assert changed.updated_at > mine.updated_at
    assert changed.data["phone"] == "021-60000000" and changed.data["email"] is None
    assert changed.data["name"] == data["name"] and changed.data["city"] == "上海"


def test_unknown_country_fails_the_record_only(harness: TrytonHarness, conn: TrytonConnector) -> None:
    good, bad = uid("CUS"), uid("CUS")
    req_bad = WriteRequest("b", bad, None, {"code": bad, "name": "X", "country": "ZZ"}, "b")
    results = conn.write("customer", [req_bad, harness.write_request(9, key=good)])
    assert results[0].error is not None and results[0].error.field == "country"
    assert results[1].ok


def test_incremental_read_shared_timestamp_across_pages(harness: TrytonHarness, conn: TrytonConnector) -> None:
    ids = harness.seed(7, updated_at=T0) + harness.seed(2, updated_at=T0 + dt.timedelta(microseconds=1))
    window = Cursor(T0 - dt.timedelta(seconds=1))
    until = Cursor(T0 + dt.timedelta(seconds=1), "\uffff")
    pages = list(conn.read_changes("customer", window, page_size=3, until=until))
    got = [r.id for p in pages for r in p.records]
    assert got == sorted(ids, key=int) and len(set(got)) == 9
    assert pages[0].checkpoint is not None and pages[0].checkpoint.updated_at == T0
    rest = [r.id for p in conn.read_changes("customer", pages[0].checkpoint, page_size=4, until=until)
            for r in p.records]
    assert rest == got[3:]
    assert all(p.checkpoint == p.records[-1].cursor() for p in pages)
    tail = list(conn.read_changes("customer", pages[-1].checkpoint, page_size=3, until=until))
    assert len(tail) == 1 and tail[0].records == []


def test_lost_create_answer_is_recovered_without_duplicate(harness: TrytonHarness, conn: TrytonConnector) -> None:
    key = uid("CUS")
    harness.lose_next_write_response()
    [res] = conn.write("customer", [harness.write_request(5, key=key)])
    assert res.ok and res.action is WriteAction.CREATED
    assert harness.count_with_key(key) == 1
    [again] = conn.write("customer", [harness.write_request(5, key=key)])
    assert again.target_id == res.target_id and harness.count_with_key(key) == 1


# -- sales, shipments, invoices, payments --------------------------------------------------

def test_sale_with_lines_confirmed_then_locked(harness: TrytonHarness) -> None:
    conn = harness.connector(sale_workflow="confirm")
    assert isinstance(conn, TrytonConnector)
    customer = ensure_customer(conn, harness)
    key, bad = uid("SO"), uid("SO")
    lines = [{"product": "1.01.001", "quantity": 2, "unit_price_tax_included": "113.00"},
             {"product": "1.01.002", "quantity": 1, "unit": "Unit", "unit_price": "50"}]
    results = conn.write("sales_order", [
        sale_request(key, customer, lines),
        sale_request(bad, customer, [{"product": "9.99.999", "quantity": 1, "unit_price": 1}]),
    ])
    assert results[0].ok, results[0].error
    assert results[1].error is not None and results[1].error.field == "lines[0].product"

    since = Cursor(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    [sale] = [r for p in conn.read_changes("sales_order", since, page_size=100) for r in p.records
              if r.id == results[0].target_id]
    d = sale.data
    assert (d["reference"], d["customer_code"], d["currency"], d["state"]) == (key, customer, "CNY", "processing")
    assert d["shipment_state"] == "waiting" and d["sale_date"] == dt.date(2026, 3, 2)
    assert [ln["product"] for ln in d["lines"]] == ["1.01.001", "1.01.002"]
    assert d["lines"][0]["unit_price"] == Decimal("100.0000") and d["lines"][0]["tax_rate"] == Decimal("13")
    assert d["lines"][0]["unit_price_tax_included"] == Decimal("113.00")
    assert d["total_amount"] == Decimal("282.50")  # (200 + 50) * 1.13

    same = conn.write("sales_order", [sale_request(key, customer, lines)])
    assert same[0].ok and same[0].action is WriteAction.UNCHANGED  # Tryton applied nothing
    changed = conn.write("sales_order", [sale_request(key, customer, [{**lines[0], "quantity": 5}])])
    assert changed[0].error is not None and changed[0].error.code == "locked"
    assert int(harness.admin_call("model.sale.sale.search_count", [[["reference", "=", key]], 0, None])) == 1
    conn.close()


def test_draft_sale_is_rewritten_on_update(harness: TrytonHarness, conn: TrytonConnector) -> None:
    customer = ensure_customer(conn, harness)
    key = uid("SO")
    [first] = conn.write("sales_order", [sale_request(key, customer, [
        {"product": "1.01.003", "quantity": 1, "unit_price": 10}])])
    [second] = conn.write("sales_order", [sale_request(key, customer, [
        {"product": "1.01.004", "quantity": 4, "unit_price": 20}, {"product": "1.01.005", "quantity": 1,
                                                                   "unit": "Box", "unit_price": 5}])])
    assert second.action is WriteAction.UPDATED and second.target_id == first.target_id
    lines = harness.admin_call("model.sale.line.search_read", [[["sale", "=", int(first.target_id or 0)]], 0,
                                                                None, None, ["product.code", "quantity"]])
    assert sorted((ln["product."]["code"], ln["quantity"]) for ln in lines) == [("1.01.004", 4.0), ("1.01.005", 1.0)]


def _ship(harness: TrytonHarness, sale_id: int) -> None:
    [sale] = harness.admin_call("model.sale.sale.read", [[sale_id], ["shipments"]])
    for step in ("assign_try", "pick", "pack", "do"):
        harness.admin_call(f"model.stock.shipment.out.{step}", [sale["shipments"]])


def _post_and_pay(harness: TrytonHarness, sale_id: int, amount: Decimal | None,
                  invoice_date: dt.date | None = None) -> int:
    [sale] = harness.admin_call("model.sale.sale.read", [[sale_id], ["invoices"]])
    [invoice] = sale["invoices"]
    if invoice_date is not None:
        harness.admin_call("model.account.invoice.write", [[invoice], {"invoice_date": invoice_date}])
    harness.admin_call("model.account.invoice.post", [[invoice]])
    if amount is not None:
        pay_invoice(harness, invoice, amount)
    return int(invoice)


def pay_invoice(harness: TrytonHarness, invoice: int, amount: Decimal) -> None:
    """The account.invoice.pay wizard over JSON-RPC, as a cashier would run it."""
    wctx = {"active_model": "account.invoice", "active_id": invoice, "active_ids": [invoice]}
    wizard = "wizard.account.invoice.pay"
    sid = harness.admin_call(f"{wizard}.create", [])[0]
    view = harness.admin_call(f"{wizard}.execute", [sid, {}, "start"], context=wctx)
    defaults = {k: v for k, v in view["view"]["defaults"].items() if not k.endswith(".")}
    form = {**defaults, "payment_method": harness.server.meta["payment_method"], "amount": amount,
            "date": dt.date.today()}
    result = harness.admin_call(f"{wizard}.execute", [sid, {"start": form}, "choice"], context=wctx)
    if result.get("view", {}).get("state") == "ask":  # partial payment: keep the rest open
        ask = {k: v for k, v in result["view"]["defaults"].items() if not k.endswith(".")}
        ask["type"] = "partial"
        harness.admin_call(f"{wizard}.execute", [sid, {"start": form, "ask": ask}, "pay"], context=wctx)
    harness.admin_call(f"{wizard}.delete", [sid], context=wctx)


def test_shipment_invoice_and_payments_flow_to_reads(harness: TrytonHarness) -> None:
    conn = harness.connector(sale_workflow="confirm")
    assert isinstance(conn, TrytonConnector)
    customer = ensure_customer(conn, harness)
    key = uid("SO")
    [res] = conn.write("sales_order", [sale_request(key, customer, [
        {"product": "1.01.006", "quantity": 3, "unit_price": "100"}])])
    assert res.ok, res.error
    sale_id = int(res.target_id or 0)
    since = Cursor(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    [before] = [r for p in conn.read_changes("sales_order", since, page_size=100) for r in p.records
                if r.id == res.target_id]

    _ship(harness, sale_id)
    shipped = [r for p in conn.read_changes("sales_order", before.cursor(), page_size=100) for r in p.records
               if r.id == res.target_id]
    assert len(shipped) == 1, "shipping must change the sale's last_modified_at"
    d = shipped[0].data
    assert d["shipment_state"] == "sent" and d["shipped_date"] == dt.date.today()
    assert d["lines"][0]["shipped_quantity"] == Decimal("3")

    status_since = Cursor(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    invoice = _post_and_pay(harness, sale_id, Decimal("100"))
    receipts = [r for p in conn.read_changes("receipt", status_since, page_size=100) for r in p.records
                if r.id == str(invoice)]
    assert len(receipts) == 1
    rd = receipts[0].data
    assert (rd["customer_code"], rd["order_no"], rd["status"]) == (customer, key, "partly_paid")
    assert rd["total_amount"] == Decimal("339.00") and rd["amount_paid"] == Decimal("100")
    assert rd["amount_to_pay"] == Decimal("239.00") and rd["paid_date"] == dt.date.today()

    status = {r.data["customer_code"]: r for p in conn.read_changes("account_status", status_since, page_size=50)
              for r in p.records}
    assert status[customer].data["account_status"] == "partly_paid"
    assert status[customer].data["outstanding_balance"] == Decimal("239.00")

    pay_invoice(harness, invoice, Decimal("239.00"))
    after = {r.data["customer_code"]: r for p in conn.read_changes("account_status", status[customer].cursor(),
                                                                    page_size=50) for r in p.records}
    assert after[customer].data["account_status"] == "paid"
    assert after[customer].data["outstanding_balance"] == Decimal("0")
    conn.close()


def test_overdue_invoice_marks_the_customer_overdue(harness: TrytonHarness) -> None:
    conn = harness.connector(sale_workflow="confirm")
    assert isinstance(conn, TrytonConnector)
    customer = ensure_customer(conn, harness)
    [res] = conn.write("sales_order", [sale_request(uid("SO"), customer, [
        {"product": "1.01.007", "quantity": 1, "unit_price": "10"}], payment_term="Net 30")])
    assert res.ok, res.error
    since = Cursor(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    _post_and_pay(harness, int(res.target_id or 0), None)

    def read() -> dict[str, dict[str, Any]]:
        return {r.data["customer_code"]: r.data for p in conn.read_changes("account_status", since, page_size=50)
                for r in p.records}

    assert read()[customer]["account_status"] == "open"  # posted, due in 30 days, nothing paid: owed, not due
    # Forty days later nothing was written, yet the customer must come back as overdue.
    conn.now = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=40)
    status = read()[customer]
    assert status["account_status"] == "overdue" and status["overdue_balance"] == Decimal("11.30")
    later = Cursor(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))  # after every write, before it fell due
    assert customer in {r.data["customer_code"] for p in conn.read_changes("account_status", later, page_size=50)
                        for r in p.records}
    conn.close()


def test_on_delete_deactivates_the_party_and_fetch_no_longer_sees_it(
        harness: TrytonHarness, conn: TrytonConnector) -> None:
    keep, gone = ensure_customer(conn, harness), ensure_customer(conn, harness)
    ids = conn.lookup("customer", [keep, gone])
    assert conn.delete_modes("customer") == frozenset({"deactivate"})
    assert conn.delete_modes("sales_order") == frozenset()
    results = conn.delete("customer", [ids[gone], "999999999"], mode="deactivate")
    assert [r.ok for r in results] == [True, True]
    [row] = conn.rpc.search_read("party.party", [["id", "=", int(ids[gone])], ["active", "in", [True, False]]],
                                 ["active"])
    assert not row["active"]  # Tryton's own record: deactivated, not deleted
    assert sorted(conn.fetch("customer", [ids[keep], ids[gone]])) == [ids[keep]]


def test_a_deactivated_customer_written_again_is_its_own_party_reactivated(
        harness: TrytonHarness, conn: TrytonConnector) -> None:
    """Tryton's searches skip inactive parties, but the code stays theirs (Unique(code)): the customer
    coming back (its link removed by the deletion) is found by code, updated and active again."""
    code = ensure_customer(conn, harness)
    party = conn.lookup("customer", [code])[code]
    conn.delete("customer", [party], mode="deactivate")
    back = harness.write_request(2, key=code)
    [res] = conn.write("customer", [back])
    assert res.ok, res.error
    assert (res.target_id, res.action) == (party, WriteAction.UPDATED)
    assert conn.lookup("customer", [code]) == {code: party}
    rows = conn.rpc.search_read("party.party", [["code", "=", code], ["active", "in", [True, False]]],
                                ["active", "name"])
    assert [(r["id"], r["active"], r["name"]) for r in rows] == [(int(party), True, back.data["name"])]


def test_a_sale_for_a_deactivated_customer_is_refused_by_name(harness: TrytonHarness, conn: TrytonConnector) -> None:
    code = ensure_customer(conn, harness)
    conn.delete("customer", [conn.lookup("customer", [code])[code]], mode="deactivate")
    reference = uid("SO")
    [res] = conn.write("sales_order", [sale_request(reference, code, [
        {"product": "1.01.008", "quantity": 1, "unit_price": "10"}])])
    assert res.error is not None and res.error.code == "inactive_reference" and code in res.error.message
    assert conn.rpc.search("sale.sale", [["reference", "=", reference]]) == []


def test_balances_in_two_currencies_are_kept_apart_and_converted_with_trytons_rate(harness: TrytonHarness) -> None:
    conn = harness.connector(sale_workflow="confirm")
    assert isinstance(conn, TrytonConnector)
    customer = ensure_customer(conn, harness)
    since = Cursor(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    for currency, price in (("CNY", "100"), ("USD", "14")):
        [res] = conn.write("sales_order", [sale_request(uid("SO"), customer, [
            {"product": "1.01.008", "quantity": 1, "unit_price": price}], currency=currency, payment_term="Net 30")])
        assert res.ok, res.error
        _post_and_pay(harness, int(res.target_id or 0), None)
    status = {r.data["customer_code"]: r.data for p in conn.read_changes("account_status", since, page_size=50)
              for r in p.records}[customer]
    balances = status["balances"]
    assert balances["CNY"]["outstanding"] == Decimal("113.00")  # 100 + 13 % VAT
    assert balances["USD"]["outstanding"] == Decimal("15.82")
    # The company works in CNY; the template's rate is 0.14 USD per CNY: 15.82 USD = 113.00 CNY.
    assert status["currency"] == "CNY" and status["outstanding_balance"] == Decimal("226.00")
    assert status["account_status"] == "open"
    conn.close()


# -- schema discovery ----------------------------------------------------------------------

def test_discovery_reads_tryton_fields_get(conn: TrytonConnector) -> None:
    found = conn.discover(["customer", "sales_order", "account_status"])
    customer = found["customer"]["fields"]
    assert found["customer"]["source"] == "fields_get"
    assert customer["name"]["type"] == "char" and customer["name"]["label"]
    assert customer["subdivision"]["reference"] == "country.subdivision"  # from party.address
    lines = found["sales_order"]["fields"]["lines"]["items"]
    assert lines["quantity"]["type"] == "float" and lines["product"]["reference"] == "product.product"
    assert found["sales_order"]["fields"]["state"]["createable"] is False  # Tryton marks it read-only
    assert not found["account_status"]["fields"]["outstanding_balance"]["createable"]
