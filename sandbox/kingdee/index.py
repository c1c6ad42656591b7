"""Which documents a filter can match, by their number (FNumber / FBillNo), without a scan.

K/3 Cloud answers `FNumber IN (...)` from an index on the number column; the sandbox did it by
evaluating the filter on every document, so a key lookup cost grew with the account set. Here a
filter that pins the number (`=`, `IN`, an AND with such a term, an OR of such terms) names its
candidate documents; the store still evaluates the whole filter on each of them, so the answer is
exactly the scan's. The index is rebuilt from the documents whenever it no longer covers them (a
document added or removed behind the store's back, e.g. by a test), so it can narrow, never hide.
"""

from __future__ import annotations

from typing import Any

from erphub.sandbox.kingdee.filter import BoolOp, Compare, In, Node, fold_text


class NumberIndex:
    """Document ids by folded number, for one form; allocated copies share their original's number."""

    def __init__(self) -> None:
        self._ids: dict[str, set[int]] = {}
        self._count = 0

    def add(self, number: Any, doc_id: int) -> None:
        ids = self._ids.setdefault(fold_text(str(number or "")), set())
        if doc_id not in ids:
            ids.add(doc_id)
            self._count += 1

    def remove(self, number: Any, doc_id: int) -> None:
        ids = self._ids.get(fold_text(str(number or "")))
        if ids is not None and doc_id in ids:
            ids.discard(doc_id)
            self._count -= 1

    def covering(self, docs: dict[int, dict[str, Any]], number_key: str) -> NumberIndex:
        """This index, rebuilt first if it does not hold exactly one entry per document."""
        if self._count != len(docs):
            self._ids.clear()
            self._count = 0
            for doc_id, doc in docs.items():
                self.add(doc.get(number_key), doc_id)
        return self

    def candidates(self, node: Node | None, number_key: str) -> set[int] | None:
        """The ids a filter can match, or None when it does not pin the number."""
        if isinstance(node, Compare) and node.op == "=" and node.default is None and _is(node.field, number_key):
            return set(self._ids.get(fold_text(str(node.literal)), ()))
        if isinstance(node, In) and not node.negated and _is(node.field, number_key):
            out: set[int] = set()
            for literal in node.literals:
                out |= self._ids.get(fold_text(str(literal)), set())
            return out
        if isinstance(node, BoolOp):
            parts = [self.candidates(item, number_key) for item in node.items]
            if node.op == "and":
                known = [p for p in parts if p is not None]
                return min(known, key=len) if known else None
            if all(p is not None for p in parts):
                return set().union(*[p for p in parts if p is not None])
        return None


def _is(field: str, number_key: str) -> bool:
    return field.strip().lower() == number_key.lower()
