"""ExecuteBillQuery plumbing with no I/O: filter strings, paging decisions, and rows -> records.

Kingdee returns a bare 2-D array, one row per entry line with the header repeated, columns in
FieldKeys order. Records are rebuilt here in Save-Model shape: references as {"FNumber": ...},
sub-heads as objects, entries as lists. FModifyDate is Kingdee local time (Asia/Shanghai, no
zone); records carry it as an aware UTC datetime so cursors compare across systems.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from erphub.connectors.kingdee.schema import Field, Shape
from erphub.core.errors import ProtocolError
from erphub.core.records import Cursor, Record

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_LIMIT = 2000  # Kingdee documents Limit <= 2000 per call
MAX_IN_LIST = 200  # keys per `in (...)` lookup: keeps FilterString short

_KD_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?$")


def quote(value: str) -> str:
    """A FilterString string literal ('' escapes a quote)."""
    return "'" + str(value).replace("'", "''") + "'"


def parse_kd_datetime(value: Any) -> datetime:
    """Kingdee's `2025-01-02T14:49:44.537` (local Asia/Shanghai time) as an aware UTC datetime."""
    m = _KD_DATETIME.match(str(value).strip())
    if m is None:
        raise ProtocolError(f"FModifyDate {value!r} is not a Kingdee date-time")
    year, month, day, hour, minute, second, frac = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    local = datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        micro,
        tzinfo=SHANGHAI,
    )
    return local.astimezone(UTC)


def kd_literal(moment: datetime) -> str:
    """A datetime as a FilterString literal in Kingdee local time, to the millisecond."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(SHANGHAI)
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def changed_since_filter(key: str, since: Cursor | None) -> str:
    """Documents whose date `key` is at or after the cursor's time (the exact (time, id) order is
    checked on our side: the change time is the latest of several dates, which one filter cannot order)."""
    return "" if since is None else f"{key} >= {quote(kd_literal(since.updated_at))}"


def in_filter(key: str, values: Iterable[str]) -> str:
    return f"{key} in ({','.join(quote(v) for v in values)})"


def group_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, list[Sequence[Any]]]]:
    """Consecutive rows of one document (pk in column 0) grouped, in order."""
    groups: list[tuple[Any, list[Sequence[Any]]]] = []
    for row in rows:
        if not row:
            raise ProtocolError("ExecuteBillQuery returned an empty row")
        if groups and groups[-1][0] == row[0]:
            groups[-1][1].append(row)
        else:
            groups.append((row[0], [row]))
    return groups


def complete_groups(
    shape: Shape, rows: Sequence[Sequence[Any]], limit: int
) -> tuple[list[tuple[Any, list[Sequence[Any]]]], bool]:
    """The documents of a page that are surely whole, and whether the page was full.

    With entry-level keys a full page may end in the middle of a document's lines: its last
    document is held back (the next query starts after the last whole one). When a single
    document fills the page, nothing is whole yet; the caller reads that document by itself.
    """
    groups = group_rows(rows)
    full = len(rows) >= limit
    if full and shape.entry is not None and groups:
        groups = groups[:-1]
    return groups, full


def _convert(f: Field, value: Any) -> Any:
    if f.ref_key is not None:
        return None if value in (None, "") else {f.ref_key: value}
    return value


def build_record(shape: Shape, keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> Record:
    """One document's rows -> Record(id, updated_at, Save-Model-shaped data)."""
    index = {k.lower(): i for i, k in enumerate(keys)}
    first = rows[0]

    def cell(row: Sequence[Any], key: str) -> Any:
        return row[index[key.lower()]]

    data: dict[str, Any] = {shape.pk: cell(first, shape.pk)}
    for f in shape.header:
        data[f.key] = _convert(f, cell(first, f.query_key()))
    for sub in shape.subheads:
        data[sub.key] = {f.key: _convert(f, cell(first, f.query_key())) for f in sub.fields}
    if shape.entry is not None:
        entry = shape.entry
        lines: list[dict[str, Any]] = []
        seen: set[Any] = set()
        for row in rows:
            entry_id = cell(row, entry.pk_query_key())
            if entry_id in (None, 0, "") or entry_id in seen:
                continue  # a header without lines answers one row with null entry columns
            seen.add(entry_id)
            lines.append(
                {entry.pk: entry_id, **{f.key: _convert(f, cell(row, f.query_key())) for f in entry.fields}}
            )
        data[entry.key] = lines
    for key in shape.state_keys:
        data[key] = cell(first, key)
    return Record(str(data[shape.pk]), change_time(shape, [cell(first, key) for key in shape.stamp_keys()],
                                                  data[shape.pk]), data)


def change_time(shape: Shape, stamps: Sequence[Any], pk: Any) -> datetime:
    """A record's change time: the latest of FModifyDate and its state dates (`Shape.stamp_keys` order).

    FModifyDate is always set; a state date is empty until that state change happened.
    """
    if not stamps or stamps[0] in (None, ""):
        raise ProtocolError(f"{shape.form_id} record {pk} has no {shape.modify_key}")
    return max(parse_kd_datetime(value) for value in stamps if value not in (None, ""))


def find_status(body: Any) -> dict[str, Any] | None:
    """The ResponseStatus of any Kingdee answer shape, or None for a bare query result.

    Shapes: `{"Result":{"ResponseStatus":{...}}}` (operations), `[[{"Result":{...}}]]` (query
    errors), `{"ResponseStatus":{...}}` (BillQuery errors, some versions).
    """
    if isinstance(body, list) and len(body) == 1 and isinstance(body[0], list) and len(body[0]) == 1:
        body = body[0][0]
    if not isinstance(body, dict):
        return None
    result = body.get("Result")
    if isinstance(result, dict) and isinstance(result.get("ResponseStatus"), dict):
        return result["ResponseStatus"]
    status = body.get("ResponseStatus")
    return status if isinstance(status, dict) else None


def is_success(status: dict[str, Any]) -> bool:
    """`IsSuccess` is a boolean live and a string in templates: compare case-insensitively."""
    return str(status.get("IsSuccess")).strip().lower() == "true"


def status_message(status: dict[str, Any]) -> str:
    errors = status.get("Errors") or []
    texts = [str(e.get("Message")) for e in errors if isinstance(e, dict) and e.get("Message")]
    return "; ".join(texts)[:500] or f"MsgCode {status.get('MsgCode')}"
