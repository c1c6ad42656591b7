"""Incremental reading: the rows of a Tryton model changed inside a cursor window, keyset-paged.

Incremental reads use `last_modified_at` (Tryton 8's searchable, orderable
`COALESCE(write_date, create_date)`): `write_date` alone is NULL on records never written after
creation (sales are; parties happen to be written at creation), so `write_date >= t` would miss
new sales. Pages are keyset-paged in (last_modified_at, id) order with the domain
`['OR', [lm > t], [lm = t, id > i]]`, and records at or before the cursor are dropped again on
the client side, so many records sharing a timestamp across a page boundary are each read once.
Timestamps are naive UTC with microseconds over JSON-RPC; records carry them as aware UTC.

Tryton stamps write_date with the SQL CURRENT_TIMESTAMP, which PostgreSQL fixes at the start of the
transaction (postgresql.org/docs/current/functions-datetime.html): a long transaction commits rows
stamped before rows already read. The engine's overlap window (`read_lag_s` = 60 s) re-reads them.
State changes (quote, confirm, post, pay, cancel) are writes of the record and move write_date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from erphub.connectors.tryton.rpc import TrytonRPC
from erphub.core.records import Cursor, Page, Record

ID_MAX = "\uffff"  # the engine's "every id at that timestamp" upper bound
LM = "last_modified_at"

Rows = list[dict[str, Any]]
# What an entity reads for the connector's `read_changes`: (since, until, page_size) -> pages.
Reader = Callable[[Cursor | None, Cursor | None, int], Iterator[Page]]


class ReadPlan(NamedTuple):
    """What one entity reads of its model: the model, a fixed domain and the fields."""

    model: str
    domain: Sequence[Any]
    fields: Sequence[str]


def naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def after_cursor(since: Cursor | None, stamp: dt.datetime, record_id: int) -> bool:
    """Whether (stamp, id) is strictly after `since` (an empty id: anything at or after its time)."""
    if since is None:
        return True
    if since.id == "":
        return aware(stamp) >= since.updated_at
    return (aware(stamp), record_id) > (since.updated_at, int(since.id))


def within_cursor(until: Cursor | None, stamp: dt.datetime, record_id: int) -> bool:
    """Whether (stamp, id) is at or before `until` (an empty or ID_MAX id: its whole timestamp)."""
    if until is None:
        return True
    if until.id in ("", ID_MAX):
        return aware(stamp) <= until.updated_at
    return (aware(stamp), record_id) <= (until.updated_at, int(until.id))


def changed_rows(
    rpc: TrytonRPC,
    model: str,
    domain: Sequence[Any],
    fields: Sequence[str],
    since: Cursor | None,
    until: Cursor | None,
    page_size: int,
) -> Iterator[Rows]:
    """Rows (with `last_modified_at`) changed after `since` up to `until`, a page of rows at a time."""
    after = since
    while True:
        clauses = list(domain)
        if after is not None:
            ts = naive(after.updated_at)
            if after.id == "":
                clauses.append([LM, ">=", ts])
            else:
                clauses.append(["OR", [[LM, ">", ts]], [[LM, "=", ts], ["id", ">", int(after.id)]]])
        if until is not None:
            ts = naive(until.updated_at)
            if until.id in ("", ID_MAX):
                clauses.append([LM, "<=", ts])
            else:
                clauses.append(["OR", [[LM, "<", ts]], [[LM, "=", ts], ["id", "<=", int(until.id)]]])
        rows = rpc.search_read(model, clauses, [*fields, LM], limit=page_size, order=[[LM, "ASC"], ["id", "ASC"]])
        kept = [
            r
            for r in rows
            if r.get(LM) is not None and after_cursor(since, r[LM], r["id"]) and within_cursor(until, r[LM], r["id"])
        ]
        if kept:
            yield kept
        if len(rows) < page_size:
            return
        last = rows[-1]
        after = Cursor(aware(last[LM]), str(last["id"]))


def read_pages(
    rpc: TrytonRPC,
    plan: ReadPlan,
    to_data: Callable[[Rows], Rows],
    since: Cursor | None,
    until: Cursor | None,
    page_size: int,
) -> Iterator[Page]:
    """Pages of records, one per Tryton row; `to_data` maps a page of rows to the records' data."""
    yielded = False
    for rows in changed_rows(rpc, plan.model, plan.domain, plan.fields, since, until, page_size):
        data = to_data(rows)
        records = [Record(str(r["id"]), aware(r[LM]), d) for r, d in zip(rows, data, strict=True)]
        if records:
            yielded = True
            yield Page(records, records[-1].cursor())
    if not yielded:
        yield Page([], None)


def _ids(rpc: TrytonRPC, model: str, domain: list[Any]) -> list[int]:
    """Every id matching `domain`, keyset-paged on the id (ids never move)."""
    found: list[int] = []
    while True:
        rows = rpc.search_read(model, [*domain, *([["id", ">", found[-1]]] if found else [])], ["id"],
                               limit=1000, order=[["id", "ASC"]])
        found += [int(r["id"]) for r in rows]
        if len(rows) < 1000:
            return found


def sale_change_times(rpc: TrytonRPC, since: Cursor | None) -> dict[int, dt.datetime]:
    """Sales changed at or after `since`, with their change time: the latest of the sale's own
    `last_modified_at` and that of its lines' stock moves.

    Tryton writes a sale only when one of its states changes (sale.Sale.process writes
    shipment_state only if it differs), so a second partial shipment, which leaves it at
    "partially shipped", writes nothing on the sale: only its moves show the new shipped quantity.
    """
    if since is None:
        ids = _ids(rpc, "sale.sale", [])
    else:
        t = naive(since.updated_at)
        ids = sorted(set(_ids(rpc, "sale.sale", [[LM, ">=", t]]))
                     | set(_ids(rpc, "sale.sale", [["lines.moves.last_modified_at", ">=", t]])))
    return sale_times_of(rpc, ids)


def sale_times_of(rpc: TrytonRPC, ids: Sequence[int]) -> dict[int, dt.datetime]:
    """The change time of each of these sales: the latest of its own and its stock moves' (see above)."""
    times: dict[int, dt.datetime] = {}
    for start in range(0, len(ids), 500):
        sales = rpc.read("sale.sale", list(ids[start:start + 500]), ["lines", LM])
        lines = rpc.read("sale.line", [ln for s in sales for ln in s.get("lines") or []], ["sale", "moves"])
        moves = {m["id"]: m[LM] for m in rpc.read("stock.move", [m for ln in lines for m in ln.get("moves") or []],
                                                   [LM]) if m.get(LM) is not None}
        for sale in sales:
            times[sale["id"]] = aware(sale[LM])
        for line in lines:
            for move in line.get("moves") or []:
                if move in moves:
                    times[line["sale"]] = max(times[line["sale"]], aware(moves[move]))
    return times


def read_by_change_time(
    rpc: TrytonRPC,
    plan: ReadPlan,
    to_data: Callable[[Rows], Rows],
    times: dict[int, dt.datetime],
    since: Cursor | None,
    until: Cursor | None,
    page_size: int,
) -> Iterator[Page]:
    """Pages of the records in `times` (id -> change time) after `since` up to `until`, in
    (change time, id) order; each page's checkpoint is its last (change time, id)."""
    ordered = sorted((ts, rid) for rid, ts in times.items()
                     if after_cursor(since, ts, rid) and within_cursor(until, ts, rid))
    if not ordered:
        yield Page([], None)
        return
    for start in range(0, len(ordered), page_size):
        chunk = ordered[start:start + page_size]
        rows = rpc.search_read(plan.model, [*plan.domain, ["id", "in", [rid for _, rid in chunk]]],
                               [*plan.fields, LM], order=[["id", "ASC"]])
        by_id = {r["id"]: (r, d) for r, d in zip(rows, to_data(rows), strict=True)}
        records = [Record(str(rid), ts, by_id[rid][1]) for ts, rid in chunk if rid in by_id]
        yield Page(records, Cursor(chunk[-1][0], str(chunk[-1][1])))


def fetch_records(
    rpc: TrytonRPC, plan: ReadPlan, to_data: Callable[[Rows], Rows], ids: Sequence[str]
) -> dict[str, Record]:
    """Records with these ids as they are now: `search_read` with the read's own domain plus `id in`.

    The read's domain stays (a draft invoice is no receipt), so a record outside it, or deleted, is
    absent. Ids that are not integers cannot be Tryton ids.
    """
    wanted = sorted({int(i) for i in ids if str(i).isdigit()})
    found: dict[str, Record] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        rows = rpc.search_read(plan.model, [*plan.domain, ["id", "in", chunk]], [*plan.fields, LM],
                               order=[["id", "ASC"]])
        rows = [r for r in rows if r.get(LM) is not None]
        for row, data in zip(rows, to_data(rows), strict=True):
            found[str(row["id"])] = Record(str(row["id"]), aware(row[LM]), data)
    return found
