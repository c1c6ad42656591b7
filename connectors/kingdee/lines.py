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


# ---- line ids kept in the link ------------------------------------------------------------------
#
# An update needs each existing line's FEntryID. Re-reading them costs one ExecuteBillQuery per
# write batch, so the connector keeps them in the link instead (`WriteResult.target_meta`): after a
# save, each sent line's FEntryID under its source line key. The mapped lines carry no id of their
# own (the CRM's sub-form rows have none the mapping sends), so a line's key is its match value
# (the material) and its occurrence among lines of that value: `1.01.002#1`, `1.01.002#2`; with no
# match key, its position (`#3`). This is exactly the pairing plan_lines() makes, read from memory.
# The kept ids are only a shortcut: when the link has none for this document, or Kingdee refuses an
# id as unknown (the line was deleted in the client), the lines are re-read from Kingdee.

LINES = "lines"


def line_keys(entry: Entry, rows: Sequence[Any]) -> list[str]:
    """Each sent row's source line key: match value and occurrence (`MAT#2`), or position (`#2`)."""
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        value = ""
        if entry.match_key and isinstance(row, dict):
            value = match_value(row.get(entry.match_key)) or ""
        seen[value] = seen.get(value, 0) + 1
        out.append(f"{value}#{seen[value]}")
    return out


def kept_meta(entry: Entry, target_id: str, rows: Sequence[Any], saved_ids: Sequence[int] | None) -> dict[str, Any]:
    """What the link keeps after a save: the saved line ids by source line key. Empty (so the next
    update re-reads) when Kingdee's answer did not pair one id with each sent line."""
    if saved_ids is None or len(saved_ids) != len(rows):
        return {}
    lines = [{"line": key, entry.pk: entry_id} for key, entry_id in zip(line_keys(entry, rows), saved_ids, strict=True)]
    return {"target_id": str(target_id), LINES: {entry.key: lines}}


def lines_from_meta(entry: Entry, target_id: str, meta: Any) -> list[CurrentLine] | None:
    """The lines a link kept for this document, as plan_lines() takes them; None when it kept none."""
    if not isinstance(meta, dict) or str(meta.get("target_id")) != str(target_id):
        return None
    rows = (meta.get(LINES) or {}).get(entry.key)
    if not isinstance(rows, list) or not rows:
        return None
    out: list[CurrentLine] = []
    for row in rows:
        try:
            entry_id = int(row[entry.pk])
            value = str(row["line"]).rpartition("#")[0]
        except (KeyError, TypeError, ValueError):
            return None
        out.append((entry_id, value or None))
    return out
