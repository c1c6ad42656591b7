"""The Kingdee sandbox answers number lookups from an index, with exactly the scan's answer."""

from __future__ import annotations

import pytest

from erphub.sandbox.kingdee import store as store_module
from erphub.sandbox.kingdee.seed import seed
from erphub.sandbox.kingdee.store import KingdeeStore


@pytest.fixture()
def store() -> KingdeeStore:
    s = KingdeeStore()
    seed(s, customers=300, receipts=0)
    return s


def _evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = store_module.evaluate

    def counting(*args: object) -> bool:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "evaluate", counting)
    return calls


def test_a_number_lookup_evaluates_only_its_candidates(store: KingdeeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _evaluations(monkeypatch)
    rows = store.query("BD_Customer", ["FNumber", "FCUSTID"], "FNumber IN ('CUS-000007', 'cus-000042 ', 'NOPE')")
    assert sorted(r[0] for r in rows) == ["CUS-000007", "CUS-000042"]  # the collation folds case and trailing spaces
    assert len(calls) == 2  # not one per customer
    calls.clear()
    rows = store.query("BD_Customer", ["FNumber"], "FForbidStatus = 'A' AND FNumber = 'CUS-000009'")
    assert rows == [["CUS-000009"]] and len(calls) == 1
    calls.clear()
    store.query("BD_Customer", ["FNumber"], "FNumber LIKE 'CUS-00000%'")  # not pinned: a scan
    assert len(calls) == len(store.docs["BD_Customer"])


def test_the_index_follows_saves_and_deletes(store: KingdeeStore) -> None:
    [(cust_id, number)] = store.query("BD_Customer", ["FCUSTID", "FNumber"], "FNumber = 'CUS-000003'")
    assert store.change_status("BD_Customer", "UnAudit", None, [cust_id])[0].error is None
    outcome = store.save("BD_Customer", {"FCUSTID": cust_id, "FNumber": "RENAMED-3"},
                         need_update_fields=["FNumber"], is_delete_entry=False)
    assert outcome.ok, outcome
    assert store.query("BD_Customer", ["FNumber"], f"FNumber = '{number}'") == []
    assert store.query("BD_Customer", ["FCUSTID"], "FNumber = 'renamed-3'") == [[cust_id]]
    doc = store.docs["BD_Customer"][cust_id]
    del store.docs["BD_Customer"][cust_id]  # behind the store's back, as a test may do
    assert store.query("BD_Customer", ["FCUSTID"], "FNumber = 'RENAMED-3'") == []
    store.docs["BD_Customer"][cust_id] = doc
    assert store.query("BD_Customer", ["FCUSTID"], "FNumber = 'RENAMED-3'") == [[cust_id]]
