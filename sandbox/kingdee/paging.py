"""The filtered, sorted rows of an ExecuteBillQuery, kept between its pages.

A client pages with the same FormId, FilterString and OrderString and `StartRow += Limit`. K/3
Cloud answers each page from an SQL query over indexed tables; the sandbox evaluated the filter on
every document and sorted them all for every page, so a read of n documents in pages cost O(n) per
page (51 pages of 100k customers: ~36 s). Here the first page's filtered, sorted order is kept and
the next pages are slices of it.

The vendor has no snapshot: each page is a fresh query, so a write between two pages shows in the
next one (rows shift). To keep that, an order is valid only while none of the forms it read was
written: each form has a write generation, bumped by the store on every write (Save, BatchSave,
Submit, Audit, UnAudit, Cancel, Forbid, Delete, Allocate), and an order remembers the generations
of its own form and of the forms its dotted columns (`FCustId.FNumber`) read. A document removed or
replaced behind the store's back (a test editing `store.docs`) is caught by the document count and
by an identity check of the page's rows; an in-place edit of a filtered or sorted field is not.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

Row = tuple[dict[str, Any], dict[str, Any] | None]
MAX_ORDERS = 32  # distinct queries kept; a paging client needs one at a time


@dataclass(frozen=True, slots=True)
class CachedOrder:
    rows: list[Row]
    generations: tuple[tuple[str, int], ...]
    doc_count: int


class OrderCache:
    """Filtered, sorted rows per (form, filter, order, entry), least recently used dropped first."""

    def __init__(self, max_orders: int = MAX_ORDERS) -> None:
        self._orders: OrderedDict[Hashable, CachedOrder] = OrderedDict()
        self._max = max_orders
        self.generation: dict[str, int] = {}

    def touch(self, form_id: str) -> None:
        """A write to `form_id`: every order that read it is stale from now on."""
        self.generation[form_id] = self.generation.get(form_id, 0) + 1

    def generations(self, form_ids: set[str]) -> tuple[tuple[str, int], ...]:
        return tuple((f, self.generation.get(f, 0)) for f in sorted(form_ids))

    def get(self, key: Hashable, form_ids: set[str], docs: dict[int, dict[str, Any]]) -> list[Row] | None:
        cached = self._orders.get(key)
        if cached is None:
            return None
        if cached.generations != self.generations(form_ids) or cached.doc_count != len(docs):
            del self._orders[key]
            return None
        self._orders.move_to_end(key)
        return cached.rows

    def put(self, key: Hashable, form_ids: set[str], docs: dict[int, dict[str, Any]], rows: list[Row]) -> None:
        self._orders[key] = CachedOrder(rows, self.generations(form_ids), len(docs))
        self._orders.move_to_end(key)
        while len(self._orders) > self._max:
            self._orders.popitem(last=False)

    def drop(self, key: Hashable) -> None:
        self._orders.pop(key, None)


def rows_current(rows: list[Row], docs: dict[int, dict[str, Any]], pk: str) -> bool:
    """Whether each row's document is still the one the store holds (not replaced behind its back)."""
    return all(docs.get(doc.get(pk)) is doc for doc, _ in rows)  # type: ignore[arg-type]
