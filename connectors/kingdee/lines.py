"""Line identity of Kingdee documents on update: which sent line is which existing `FEntryID`.

Save's `IsDeleteEntry` defaults to true: entry rows not sent are deleted, and rows sent without
`FEntryID` are created anew (K-DOCS bill-operations.md, "IsDeleteEntry"; K-JAVA SaveRequest.java).
Sending every line without its id therefore deletes and recreates every line, which K/3 Cloud
refuses once a line has downstream documents (an outstock pushed from it) and which loses what the
ERP added to the line. So an update carries each line's existing `FEntryID`, lines that are new go
with `FEntryID` 0, and lines that are gone are removed deliberately: only then is `IsDeleteEntry`
true (with every kept line sent by id); otherwise it is false and no line can disappear by accident.

Which sent line is which existing one: a line the mapping sent with a current `FEntryID` keeps it;
the others are paired in entry order with existing lines of the same match value (the entry's
`match_key`, the material for sales orders; position when the entry has none). This is pure: the
current lines come from one ExecuteBillQuery the connector makes before saving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from erphub.connectors.kingdee.schema import Entry

CurrentLine = tuple[int, str | None]  # (FEntryID, casefolded match value)


def match_value(value: Any) -> str | None:
    """A reference {"FNumber": x} or a plain value, casefolded (Kingdee compares codes blind to case)."""
    if isinstance(value, dict):
        value = next((v for k, v in value.items() if k.lower() in ("fnumber", "fname")), None)
    return None if value in (None, "") else str(value).casefold()


@dataclass(frozen=True, slots=True)
class LinePlan:
    rows: list[dict[str, Any]]  # the sent rows, each with its FEntryID (0 = new line)
    removed: tuple[int, ...]  # existing FEntryIDs no sent row took: deleted on purpose

    @property
    def deletes(self) -> bool:
        return bool(self.removed)


def plan_lines(entry: Entry, rows: Sequence[Any], current: Sequence[CurrentLine]) -> LinePlan:
    """Give each sent row its existing FEntryID; the existing lines nobody took are the removed ones."""
    taken: set[int] = set()
    existing_ids = {entry_id for entry_id, _ in current}
    out: list[dict[str, Any]] = []
    pending: list[int] = []
    for row in rows:
        line = dict(row) if isinstance(row, dict) else row
        if isinstance(line, dict):
            sent_id = _entry_id(line, entry.pk)
            if sent_id in existing_ids and sent_id not in taken:
                taken.add(sent_id)
                line[entry.pk] = sent_id
            else:
                line = {entry.pk: 0, **{k: v for k, v in line.items() if k.lower() != entry.pk.lower()}}
                pending.append(len(out))
        out.append(line)
    for index in pending:
        line = out[index]
        want = match_value(line.get(entry.match_key)) if entry.match_key else None
        for entry_id, value in current:
            if entry_id not in taken and (entry.match_key is None or value == want):
                taken.add(entry_id)
                line[entry.pk] = entry_id
                break
    removed = tuple(entry_id for entry_id, _ in current if entry_id not in taken)
    return LinePlan(out, removed)


def _entry_id(line: dict[str, Any], pk: str) -> int:
    raw = next((v for k, v in line.items() if k.lower() == pk.lower()), 0)
    try:
        return int(raw or 0)
    except (TypeError, ValueError):
        return 0
