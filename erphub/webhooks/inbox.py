"""Store functions over the inbox table: accept an event, claim due ones, settle what a pass did.

Each function is one short transaction on the hub's `Store`. `accept` is the one the receiver
awaits before answering 200: when it returns "accepted", the event is committed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from erphub.core.errors import StoreError
from erphub.core.records import utcnow
from erphub.store import Store
from erphub.store.db import as_utc
from erphub.store.inbox import InboxRow

Acceptance = Literal["accepted", "duplicate", "replayed"]

# One process runs the receiver; this makes "is the nonce new? then insert" atomic within it.
# The unique (source, deliver_id) constraint is the cross-process guard against duplicates.
_ACCEPT_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    source: str
    deliver_id: str
    nonce: str
    op: str
    record_id: str
    record_updated_at: datetime
    payload: dict[str, Any]
    pipelines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InboxEvent:
    id: int
    source: str
    deliver_id: str
    op: str
    record_id: str
    record_updated_at: datetime
    payload: dict[str, Any]
    pipelines: tuple[str, ...]
    remaining: tuple[str, ...]
    status: str
    attempts: int
    next_attempt_at: datetime
    received_at: datetime
    last_error: str | None


def _event(row: InboxRow) -> InboxEvent:
    now = utcnow()
    return InboxEvent(
        id=row.id, source=row.source, deliver_id=row.deliver_id, op=row.op, record_id=row.record_id,
        record_updated_at=as_utc(row.record_updated_at) or now, payload=dict(row.payload or {}),
        pipelines=tuple(row.pipelines or ()), remaining=tuple(row.remaining or ()), status=row.status,
        attempts=row.attempts, next_attempt_at=as_utc(row.next_attempt_at) or now,
        received_at=as_utc(row.received_at) or now, last_error=row.last_error)


def accept(store: Store, event: IncomingEvent, *, nonce_window_s: float,
           now: datetime | None = None) -> Acceptance:
    """Commit a verified event, or say it is a duplicate delivery or a replayed request.

    A delivery id already seen for the source is a duplicate (the sender retrying: answer 200, do
    nothing). A nonce seen for the source within the window under another delivery id is a replay.
    """
    now = now or utcnow()
    since = now - timedelta(seconds=nonce_window_s)
    with _ACCEPT_LOCK:
        try:
            with store.session() as session, session.begin():
                seen = session.scalar(select(InboxRow.id).where(
                    InboxRow.source == event.source, InboxRow.deliver_id == event.deliver_id))
                if seen is not None:
                    return "duplicate"
                reused = session.scalar(select(InboxRow.id).where(
                    InboxRow.source == event.source, InboxRow.nonce == event.nonce,
                    InboxRow.received_at >= since).limit(1))
                if reused is not None:
                    return "replayed"
                routed = list(event.pipelines)
                session.add(InboxRow(
                    source=event.source, deliver_id=event.deliver_id, nonce=event.nonce, received_at=now,
                    pipelines=routed, remaining=routed, op=event.op, record_id=event.record_id,
                    record_updated_at=event.record_updated_at, payload=event.payload,
                    status="pending" if routed else "done", attempts=0, next_attempt_at=now,
                    last_error=None, finished_at=None if routed else now))
        except IntegrityError:
            return "duplicate"  # another process committed the same delivery id first
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write the webhook inbox: {exc.__class__.__name__}") from exc
    return "accepted"


def claim_due(store: Store, *, limit: int, now: datetime | None = None) -> list[InboxEvent]:
    """Pending events whose next attempt is due, oldest first."""
    now = now or utcnow()
    with store.session() as session:
        due = select(InboxRow).where(InboxRow.status == "pending", InboxRow.next_attempt_at <= now)
        rows = session.scalars(due.order_by(InboxRow.id).limit(limit))
        return [_event(row) for row in rows]


def delivered_newer(store: Store, pipeline: str, events: Sequence[InboxEvent]) -> set[int]:
    """Ids of events superseded for `pipeline`: a newer event of the same record was already delivered
    to it. Delivering the older one after that would overwrite newer data with older."""
    by_source: dict[str, list[InboxEvent]] = {}
    for ev in events:
        by_source.setdefault(ev.source, []).append(ev)
    superseded: set[int] = set()
    with store.session() as session:
        for source, group in by_source.items():
            ids = sorted({ev.record_id for ev in group})
            newest: dict[str, datetime] = {}
            for start in range(0, len(ids), 500):
                rows = session.scalars(select(InboxRow).where(
                    InboxRow.source == source, InboxRow.record_id.in_(ids[start:start + 500])))
                for row in rows:
                    if pipeline in (row.pipelines or ()) and pipeline not in (row.remaining or ()) \
                            and row.status != "failed":
                        at = as_utc(row.record_updated_at)
                        if at is not None and (row.record_id not in newest or at > newest[row.record_id]):
                            newest[row.record_id] = at
            superseded.update(ev.id for ev in group
                              if ev.record_id in newest and newest[ev.record_id] > ev.record_updated_at)
    return superseded


@dataclass
class Settlement:
    """What one worker pass did to each event it touched."""

    delivered: dict[int, set[str]] = field(default_factory=dict)  # event id -> pipelines done
    failed: dict[int, dict[str, str]] = field(default_factory=dict)  # event id -> pipeline -> error
    gave_up: dict[int, set[str]] = field(default_factory=dict)  # event id -> pipelines dead-lettered

    def done(self, event_id: int, pipeline: str) -> None:
        self.delivered.setdefault(event_id, set()).add(pipeline)

    def fail(self, event_id: int, pipeline: str, error: str) -> None:
        self.failed.setdefault(event_id, {})[pipeline] = error

    def give_up(self, event_id: int, pipeline: str) -> None:
        self.gave_up.setdefault(event_id, set()).add(pipeline)

    def event_ids(self) -> set[int]:
        return set(self.delivered) | set(self.failed) | set(self.gave_up)


def backoff_seconds(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential: base, 2·base, 4·base, ... capped at max_s."""
    return float(min(max_s, base_s * (2 ** max(0, attempts - 1))))


def settle(store: Store, outcome: Settlement, *, base_delay_s: float, max_delay_s: float,
           now: datetime | None = None) -> None:
    """Apply a pass's outcome in one transaction: delivered pipelines leave `remaining`; a failure
    counts one attempt per event and pushes its next attempt back; an event with nothing remaining
    is done (or failed, when any of its pipelines ended in the dead letters)."""
    now = now or utcnow()
    ids = sorted(outcome.event_ids())
    if not ids:
        return
    try:
        with store.session() as session, session.begin():
            for start in range(0, len(ids), 500):
                for row in session.scalars(select(InboxRow).where(InboxRow.id.in_(ids[start:start + 500]))):
                    finished = outcome.delivered.get(row.id, set()) | outcome.gave_up.get(row.id, set())
                    row.remaining = [p for p in (row.remaining or []) if p not in finished]
                    errors = outcome.failed.get(row.id)
                    if errors or row.id in outcome.gave_up:
                        row.attempts = (row.attempts or 0) + 1
                        if errors:
                            row.last_error = "; ".join(f"{p}: {e}" for p, e in sorted(errors.items()))[:4000]
                        row.next_attempt_at = now + timedelta(
                            seconds=backoff_seconds(row.attempts, base_delay_s, max_delay_s))
                    if not row.remaining:
                        row.status = "failed" if row.id in outcome.gave_up else "done"
                        row.finished_at = now
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot update the webhook inbox: {exc.__class__.__name__}") from exc


def get_events(store: Store, *, source: str | None = None, status: str | None = None,
               ids: Iterable[int] | None = None, limit: int = 1000) -> list[InboxEvent]:
    with store.session() as session:
        query = select(InboxRow).order_by(InboxRow.id)
        if source is not None:
            query = query.where(InboxRow.source == source)
        if status is not None:
            query = query.where(InboxRow.status == status)
        if ids is not None:
            query = query.where(InboxRow.id.in_(list(ids)))
        return [_event(row) for row in session.scalars(query.limit(limit))]


def status_counts(store: Store) -> dict[str, int]:
    with store.session() as session:
        rows = session.execute(select(InboxRow.status, func.count()).group_by(InboxRow.status))
        return {status: int(count) for status, count in rows}


def purge_finished(store: Store, *, older_than_s: float, now: datetime | None = None) -> int:
    """Delete done events older than the retention (their delivery ids stop deduplicating then).
    Failed events stay: their payload is also in the dead letters, but the row says why."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_s)
    with store.session() as session, session.begin():
        old = delete(InboxRow).where(InboxRow.status == "done", InboxRow.finished_at < cutoff)
        result = session.execute(old)
        return int(getattr(result, "rowcount", 0) or 0)
