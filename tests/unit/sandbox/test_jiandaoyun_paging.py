"""Jiandaoyun sandbox paging by `data_id` keeps its id order between pages and follows writes."""

from __future__ import annotations

from erphub.sandbox.jiandaoyun.forms import CUSTOMER
from erphub.sandbox.jiandaoyun.store import JiandaoyunState


def _pages(state: JiandaoyunState, limit: int) -> list[str]:
    seen: list[str] = []
    after: str | None = None
    while True:
        page = state.query(CUSTOMER, after_id=after, limit=limit, fields=None, filter_=None)
        seen.extend(r["_id"] for r in page)
        if len(page) < limit:
            return seen
        after = page[-1]["_id"]


def test_paging_after_writes_and_deletes_returns_each_record_once_in_id_order() -> None:
    state = JiandaoyunState()
    ids = [state.insert_plain(CUSTOMER.entry_id, {}) for _ in range(250)]
    assert _pages(state, 100) == sorted(ids)
    state.delete(CUSTOMER.entry_id, ids[120])
    ids.remove(ids[120])
    ids.append(state.insert_plain(CUSTOMER.entry_id, {}))
    assert _pages(state, 100) == sorted(ids)
    first = state.query(CUSTOMER, after_id=None, limit=100, fields=None, filter_=None)
    removed = ids.pop(150)
    del state.records[CUSTOMER.entry_id][removed]  # behind the store's back
    rest = _pages(state, 100)
    assert rest == sorted(ids) and len(first) == 100
