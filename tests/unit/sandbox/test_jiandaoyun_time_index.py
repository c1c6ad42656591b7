"""data/list over an `updateTime` window in the Jiandaoyun sandbox: indexed, and never a stale page.

erphub reads in `updateTime` windows paged by data id (connectors/jiandaoyun.py `read_changes`).
Scanning every record for each page made a window's pages cost a scan of all older records: at
200,000 customers 18 ms a page, growing with the form. The sandbox now picks a window's candidates
from a time index; the filter still decides, so answers are the same as a full scan's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from erphub import sandbox as sandboxes
from erphub.sandbox.jiandaoyun.store import compile_filter, fmt_time

BASE = datetime(2026, 3, 1, tzinfo=UTC)


def _box(n: int) -> Any:
    box = sandboxes.create("jiandaoyun", seed_data=False, enforce_limits=False)
    for i in range(n):
        box.state.insert_plain("customer_form", {"customer_code": f"CUS-{i:05d}", "customer_name": f"客户{i}"},
                               at=BASE + timedelta(seconds=2 * i))
    return box


def _window(low: datetime | None, high: datetime) -> dict[str, Any]:
    return {"rel": "and", "cond": [{"field": "updateTime", "type": "datetime", "method": "range",
                                    "value": [fmt_time(low) if low else None, fmt_time(high)]}]}


def _pages(box: Any, spec: dict[str, Any], limit: int = 50) -> list[str]:
    form, ids, after = box.state.forms["customer_form"], [], None
    while True:
        rows = box.state.query(form, after_id=after, limit=limit, fields=None, filter_=spec)
        ids += [row["_id"] for row in rows]
        if len(rows) < limit:
            return ids
        after = rows[-1]["_id"]


def _scan(box: Any, spec: dict[str, Any]) -> list[str]:
    """The answer from every record, as the unindexed sandbox gave it."""
    match = compile_filter(box.state.forms["customer_form"], spec)
    return sorted(i for i, r in box.state.records["customer_form"].items() if match(r))


def test_window_pages_equal_a_full_scan_and_touch_only_the_window() -> None:
    box = _box(3000)
    spec = _window(BASE + timedelta(seconds=4000), BASE + timedelta(seconds=4398))  # records 2000..2199
    evaluated: list[str] = []
    real = box.state.records["customer_form"]

    class Counting(dict):  # the records a page reads, by data id
        def get(self, key: str, default: Any = None) -> Any:
            evaluated.append(key)
            return super().get(key, default)

    box.state.records["customer_form"] = Counting(real)
    got = _pages(box, spec)
    assert got == _scan(box, spec) and len(got) == 200
    assert len(evaluated) <= 200 + 4  # the window's records (and the page ends), not the 2,000 before it


def test_a_record_touched_between_pages_moves_into_the_window_it_now_belongs_to() -> None:
    box = _box(400)
    late = BASE + timedelta(hours=1)
    first = _pages(box, _window(late, late + timedelta(minutes=1)))
    assert first == []
    data_id = sorted(box.state.records["customer_form"])[10]
    box.state.touch("customer_form", [data_id], at=late + timedelta(seconds=5))
    assert _pages(box, _window(late, late + timedelta(minutes=1))) == [data_id]
    assert data_id not in _pages(box, _window(None, BASE + timedelta(seconds=100)))  # gone from its old one


def test_an_open_low_bound_and_other_conditions_still_filter() -> None:
    box = _box(300)
    spec = _window(None, BASE + timedelta(seconds=199))  # records 0..99
    spec["cond"].append({"field": "customer_code", "type": "text", "method": "in",
                         "value": ["CUS-00005", "CUS-00150", "CUS-00099"]})
    assert _pages(box, spec) == _scan(box, spec)
    assert len(_pages(box, spec)) == 2
