"""ExecuteBillQuery paging in the Kingdee sandbox: one filter and one sort per read, never a stale page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from erphub.sandbox.kingdee import store as store_module
from erphub.sandbox.kingdee.seed import seed
from erphub.sandbox.kingdee.store import KingdeeStore

FILTER = "FForbidStatus = 'A' AND FNumber LIKE 'CUS-%'"
ORDER = "FName DESC, FNumber"
LIMIT = 25


def _store(customers: int) -> KingdeeStore:
    s = KingdeeStore()
    seed(s, customers=customers, receipts=0)
    return s


def _expected(store: KingdeeStore) -> list[list[Any]]:
    """The answer computed from the store's documents directly, as the vendor's SQL would give it."""
    docs = [
        d for d in store.docs["BD_Customer"].values()
        if d.get("FForbidStatus") == "A" and str(d["FNumber"]).startswith("CUS-")
    ]
    docs.sort(key=lambda d: str(d["FNumber"]).casefold())
    docs.sort(key=lambda d: str(d["FName"]).casefold(), reverse=True)
    return [[d["FNumber"], d["FName"]] for d in docs]


def _pages(store: KingdeeStore, start: int = 0) -> list[list[Any]]:
    rows: list[list[Any]] = []
    while True:
        page = store.query("BD_Customer", ["FNumber", "FName"], FILTER, ORDER, start_row=start, limit=LIMIT)
        rows.extend(page)
        if len(page) < LIMIT:
            return rows
        start += LIMIT


def _count_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = store_module.evaluate

    def counting(*args: Any) -> bool:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(store_module, "evaluate", counting)
    return calls


def test_pages_equal_the_uncached_answer() -> None:
    store = _store(130)
    assert _pages(store) == _expected(store)
    assert _pages(store) == _expected(store)  # a second read from the kept order
    entry_rows = store.query("BD_Customer", ["FNumber"], FILTER, "FNumber", start_row=5, limit=3)
    assert entry_rows == [[n] for n, _ in sorted(_expected(store))[5:8]]  # another order: its own entry
    assert store.query("BD_Customer", ["FNumber"], FILTER, ORDER, start_row=0, limit=10, top_row_count=4) == [
        [n] for n, _ in _expected(store)[:4]
    ]


@pytest.mark.parametrize("write", ["save_new", "rename", "forbid", "unaudit_and_delete"])
def test_a_write_between_two_pages_shows_in_the_next_page(write: str) -> None:
    store = _store(60)
    first = store.query("BD_Customer", ["FNumber", "FName"], FILTER, ORDER, start_row=0, limit=LIMIT)
    before = _expected(store)
    assert first == before[:LIMIT]
    victim = store.by_number("BD_Customer", str(first[3][0]))
    assert victim is not None
    if write == "save_new":  # sorts first (FName DESC): every later row moves down one
        assert store.save("BD_Customer", {"FNumber": "CUS-ZZZ", "FName": "龥 新客户",
                                          "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"},
                                          "FTRADINGCURRID": {"FNumber": "PRE001"}}).ok
    elif write == "rename":
        assert store.change_status("BD_Customer", "UnAudit", None, [victim["FCUSTID"]])[0].error is None
        assert store.save("BD_Customer", {"FCUSTID": victim["FCUSTID"], "FName": "0 改名"},
                          need_update_fields=["FName"], is_delete_entry=False).ok
    elif write == "forbid":
        assert store.change_status("BD_Customer", "Forbid", None, [victim["FCUSTID"]])[0].error is None
    else:
        assert store.change_status("BD_Customer", "UnAudit", None, [victim["FCUSTID"]])[0].error is None
        assert store.delete("BD_Customer", None, str(victim["FCUSTID"]))[0].error is None
    second = store.query("BD_Customer", ["FNumber", "FName"], FILTER, ORDER, start_row=LIMIT, limit=LIMIT)
    assert second == _expected(store)[LIMIT : 2 * LIMIT]  # what a fresh SQL query would answer now
    assert second != before[LIMIT : 2 * LIMIT]  # the order kept from the first page would be stale


def test_a_write_to_a_referenced_form_is_seen_through_a_dotted_column() -> None:
    store = _store(5)
    order = store.insert("SAL_SaleOrder", {
        "FBillTypeID": {"FNumber": "XSDD01_SYS"}, "FDate": "2026-01-05", "FSaleOrgId": {"FNumber": "100"},
        "FCustId": {"FNumber": "CUS-000002"}, "FSalerId": {"FNumber": "S001"},
        "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
        "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "1.01.001"}, "FUnitID": {"FNumber": "Pcs"}, "FQty": 1,
                             "FTaxPrice": Decimal("10")}],
    })
    query = ("SAL_SaleOrder", ["FID", "FCustId.FName"], "FCustId.FName LIKE '%改%'", "FID")
    assert store.query(*query) == []
    customer = store.by_number("BD_Customer", "CUS-000002")
    assert customer is not None
    store.change_status("BD_Customer", "UnAudit", None, [customer["FCUSTID"]])
    assert store.save("BD_Customer", {"FCUSTID": customer["FCUSTID"], "FName": "改过的名字"},
                      need_update_fields=["FName"], is_delete_entry=False).ok
    assert store.query(*query) == [[order, "改过的名字"]]  # the order's form was not written, the customer's was


def test_a_document_removed_behind_the_stores_back_is_not_served() -> None:
    store = _store(40)
    assert _pages(store) == _expected(store)
    gone = store.by_number("BD_Customer", str(_expected(store)[30][0]))
    assert gone is not None
    del store.docs["BD_Customer"][gone["FCUSTID"]]  # as test_reconcile_demo does
    assert _pages(store) == _expected(store)


@pytest.mark.parametrize("customers", [400, 1600])
def test_later_pages_cost_no_filter_evaluation(customers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(customers)
    calls = _count_evaluations(monkeypatch)
    first = store.query("BD_Customer", ["FNumber", "FName"], FILTER, ORDER, start_row=0, limit=LIMIT)
    assert len(calls) == len(store.docs["BD_Customer"])  # the first page filters every document once
    calls.clear()
    rows = first + _pages(store, start=LIMIT)
    assert len(calls) == 0  # every later page is a slice: its cost does not grow with n
    assert rows == _expected(store)
