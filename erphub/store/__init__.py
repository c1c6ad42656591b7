"""The store: the only place erphub remembers anything (cursors, links, dead letters, runs).

One `Store` per process; every public method opens and closes its own short transaction, and
`commit_batch` writes a whole batch's links, dead letters and cursor atomically.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from erphub.core.errors import StoreError
from erphub.core.records import Cursor, utcnow
from erphub.store import cursors, leases
from erphub.store.bulk import upsert
from erphub.store.db import as_utc, make_engine, migrate, to_utc
from erphub.store.models import AgreedValue, BatchCommit, Conflict, DeadLetter, Link, LinkUpdate, NewDeadLetter, RunInfo
from erphub.store.tables import (
    AgreedRow,
    ConfiguredPipelineRow,
    ConflictRow,
    CursorRow,
    DeadLetterAuditRow,
    DeadLetterRow,
    DriftRow,
    LinkRow,
    RunRow,
)

__all__ = ["AgreedValue", "BatchCommit", "Conflict", "DeadLetter", "Link", "LinkUpdate", "NewDeadLetter", "RunInfo",
           "Store"]

_CHUNK = 500  # stay under SQLite's bound-parameter limit in IN (...) queries


# A batch's links, by a statement built once (an expanding IN): once per batch, and building it
# cost more than running it when the batch has no links yet. Columns, not ORM objects: a mapped
# instance per link cost more than the query.
_LINK_COLUMNS = cast(Table, LinkRow.__table__).c
_LINKS_OF = (select(_LINK_COLUMNS.source_id, _LINK_COLUMNS.target_id, _LINK_COLUMNS.match_key,
                    _LINK_COLUMNS.payload_hash, _LINK_COLUMNS.state, _LINK_COLUMNS.written_payload,
                    _LINK_COLUMNS.updated_at, _LINK_COLUMNS.source_updated_at)
             .where(_LINK_COLUMNS.pipeline == bindparam("l_pipeline"),
                    _LINK_COLUMNS.source_id.in_(bindparam("l_source_ids", expanding=True))))


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _dead_letter(row: DeadLetterRow) -> DeadLetter:
    return DeadLetter(
        id=row.id, pipeline=row.pipeline, run_id=row.run_id, source_id=row.source_id,
        source_payload=row.source_payload, mapped_payload=row.mapped_payload, stage=row.stage,
        error_class=row.error_class, error_code=row.error_code, field=row.field, message=row.message,
        attempts=row.attempts, status=row.status, created_at=as_utc(row.created_at) or utcnow(),
        updated_at=as_utc(row.updated_at) or utcnow(), resolution=row.resolution,
        source_updated_at=as_utc(row.source_updated_at),
    )


def _run(row: RunRow) -> RunInfo:
    return RunInfo(
        id=row.id, pipeline=row.pipeline, trigger=row.trigger, status=row.status,
        started_at=as_utc(row.started_at) or utcnow(), finished_at=as_utc(row.finished_at),
        counts=dict(row.counts or {}), error=row.error, cursor_after=row.cursor_after,
    )


def format_cursor(cursor: Cursor | None) -> str | None:
    return None if cursor is None else f"{cursor.updated_at.isoformat()}|{cursor.id}"


class Store:
    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = url
        try:
            self.engine = make_engine(url)
            if auto_migrate:
                migrate(self.engine)
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot open the store: {exc.__class__.__name__}: {reason}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.schedule_interval_by_pipeline: dict[str, float] = {}
        # The pipelines of the config this store serves (None: not known). The drift of a pipeline taken
        # out of the config is not shown: no reconcile could ever clear it.
        self.pipelines_in_config: frozenset[str] | None = None

    def session(self) -> Session:
        return self._sessions()

    def close(self) -> None:
        self.engine.dispose()

    # -- leases: one run of a pipeline at a time ----------------------------------------------
    def acquire_lease(self, pipeline: str, owner: str, ttl_s: float) -> str | None:
        """None when the lease is ours, else who holds it."""
        return leases.acquire(self.session, pipeline, owner, ttl_s)

    def renew_lease(self, pipeline: str, owner: str, ttl_s: float) -> bool:
        return leases.renew(self.session, pipeline, owner, ttl_s)

    def release_lease(self, pipeline: str, owner: str) -> None:
        leases.release(self.session, pipeline, owner)

    # -- cursors ---------------------------------------------------------------------------
    def get_cursor(self, pipeline: str) -> Cursor | None:
        with self.session() as session:
            row = session.get(CursorRow, pipeline)
            if row is None:
                return None
            return Cursor(as_utc(row.updated_at) or utcnow(), row.record_id)

    def reset_cursor(self, pipeline: str) -> None:
        with self.session() as session, session.begin():
            row = session.get(CursorRow, pipeline)
            if row is not None:
                session.delete(row)

    # -- links -----------------------------------------------------------------------------
    def links_for(self, pipeline: str, source_ids: Sequence[str]) -> dict[str, Link]:
        found: dict[str, Link] = {}
        with self.session() as session:
            connection = session.connection()
            for chunk in _chunks(list(source_ids)):
                rows = connection.execute(_LINKS_OF, {"l_pipeline": pipeline, "l_source_ids": chunk})
                for source_id, target_id, key, digest, state, written, updated_at, source_updated_at in rows:
                    found[source_id] = Link(source_id, target_id, key, digest, state, written, as_utc(updated_at),
                                            as_utc(source_updated_at))
        return found

    def links_after(self, pipeline: str, after_source_id: str, limit: int) -> list[Link]:
        """The pipeline's links in source-id order after `after_source_id`, `limit` at a time (reconcile)."""
        with self.session() as session:
            rows = session.scalars(select(LinkRow).where(LinkRow.pipeline == pipeline,
                                                         LinkRow.source_id > after_source_id)
                                   .order_by(LinkRow.source_id).limit(limit))
            return [Link(row.source_id, row.target_id, row.match_key, row.payload_hash, row.state,
                         row.written_payload, as_utc(row.updated_at), as_utc(row.source_updated_at))
                    for row in rows]

    def forget_targets(self, pipeline: str, source_ids: Sequence[str]) -> None:
        """These links' target records are gone (reconcile found them missing): the next write looks up
        the key and creates the record again instead of updating a record that no longer exists."""
        with self.session() as session, session.begin():
            for chunk in _chunks(list(source_ids)):
                for row in session.scalars(select(LinkRow).where(LinkRow.pipeline == pipeline,
                                                                 LinkRow.source_id.in_(chunk))):
                    row.target_id = None
                    row.payload_hash = None
                    row.updated_at = utcnow()

    def remove_links(self, pipeline: str, source_ids: Sequence[str]) -> None:
        """The source records are gone and their deletion was applied: the links have nothing to join."""
        with self.session() as session, session.begin():
            for chunk in _chunks(list(source_ids)):
                for row in session.scalars(select(LinkRow).where(LinkRow.pipeline == pipeline,
                                                                 LinkRow.source_id.in_(chunk))):
                    session.delete(row)

    # -- batches ---------------------------------------------------------------------------
    def commit_batch(self, batch: BatchCommit, endpoints: tuple[str, str, str, str]) -> None:
        """Links, dead letters, resolved dead letters and the cursor of one batch, atomically."""
        now = utcnow()
        try:
            with self.session() as session, session.begin():
                self._write_links(session, batch.pipeline, endpoints, batch.links, now)
                self._write_dead_letters(session, batch.pipeline, batch.run_id, batch.dead_letters, now)
                # A record dead-lettered in this very batch (a refused write-back, a newer copy refused)
                # stays open even if another step of the batch delivered it.
                failed_now = {letter.source_id for letter in batch.dead_letters}
                resolved = [source_id for source_id in batch.resolved_source_ids if source_id not in failed_now
                            and (batch.open_letters is None or source_id in batch.open_letters)]
                self._resolve_dead_letters(session, batch.pipeline, resolved, now, batch.resolution)
                for conflict in batch.conflicts:
                    session.add(ConflictRow(
                        pipeline=batch.pipeline, run_id=batch.run_id, source_id=conflict.source_id,
                        target_id=conflict.target_id, field=conflict.field, source_value=conflict.source_value,
                        target_value=conflict.target_value, base_value=conflict.base_value, rule=conflict.rule,
                        winner=conflict.winner, status="held" if conflict.winner is None else "resolved",
                        created_at=now, resolved_at=None if conflict.winner is None else now))
                self._write_agreed(session, batch.agreed, now)
                if batch.cursor is not None:
                    cursors.advance(session, batch.pipeline, batch.cursor)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot commit batch: {exc.__class__.__name__}") from exc

    # -- agreed values of two-way fields ---------------------------------------------------
    def agreed_values(self, pair: str, record_ids: Sequence[str]) -> dict[tuple[str, str], Any]:
        """(record id, field) -> the last value both sides agreed on."""
        found: dict[tuple[str, str], Any] = {}
        with self.session() as session:
            for chunk in _chunks(list(dict.fromkeys(record_ids))):
                for row in session.scalars(select(AgreedRow).where(AgreedRow.pair == pair,
                                                                   AgreedRow.record_id.in_(chunk))):
                    found[(row.record_id, row.field)] = row.value
        return found

    def set_agreed(self, values: Sequence[AgreedValue]) -> None:
        with self.session() as session, session.begin():
            self._write_agreed(session, values, utcnow())

    @staticmethod
    def _write_agreed(session: Session, values: Sequence[AgreedValue], now: datetime) -> None:
        for value in values:
            row = session.get(AgreedRow, (value.pair, value.record_id, value.field))
            if row is None:
                session.add(AgreedRow(pair=value.pair, record_id=value.record_id, field=value.field,
                                      value=value.value, agreed_at=now))
                session.flush()  # a second value for the same key in this batch finds this row
            else:
                row.value = value.value
                row.agreed_at = now
            for pipeline, source_id, field_name in value.settles:
                for conflict in session.scalars(select(ConflictRow).where(
                        ConflictRow.status == "held", ConflictRow.pipeline == pipeline,
                        ConflictRow.source_id == source_id, ConflictRow.field == field_name)):
                    conflict.status = "resolved"
                    conflict.winner = "agreed"
                    conflict.resolved_at = now

    @staticmethod
    def _write_links(session: Session, pipeline: str, endpoints: tuple[str, str, str, str],
                     links: Sequence[LinkUpdate], now: datetime) -> None:
        rows = [{"pipeline": pipeline, "source_system": endpoints[0], "source_entity": endpoints[1],
                 "source_id": link.source_id, "target_system": endpoints[2], "target_entity": endpoints[3],
                 "target_id": link.target_id, "match_key": link.match_key, "payload_hash": link.payload_hash,
                 "written_payload": link.written_payload, "state": link.state, "updated_at": now,
                 "source_updated_at": to_utc(link.source_updated_at) if link.source_updated_at else None}
                for link in links]
        upsert(session, LinkRow.__table__, rows, conflict=("pipeline", "source_id"),  # type: ignore[arg-type]
               update=("target_id", "match_key", "payload_hash", "written_payload", "state", "updated_at",
                       "source_updated_at"), keep_when_null=("source_updated_at",))

    @staticmethod
    def _write_dead_letters(session: Session, pipeline: str, run_id: str,
                            letters: Sequence[NewDeadLetter], now: datetime) -> None:
        if not letters:
            return
        open_rows = {
            row.source_id: row
            for chunk in _chunks([letter.source_id for letter in letters])
            for row in session.scalars(select(DeadLetterRow).where(
                DeadLetterRow.pipeline == pipeline, DeadLetterRow.status == "open",
                DeadLetterRow.source_id.in_(chunk)))
        }
        for letter in letters:
            row = open_rows.get(letter.source_id)
            if row is None:  # one open dead letter per source record: a repeat failure bumps attempts
                row = DeadLetterRow(pipeline=pipeline, source_id=letter.source_id, attempts=0, status="open",
                                    created_at=now)
                session.add(row)
                open_rows[letter.source_id] = row
            row.run_id = run_id
            row.source_payload = letter.source_payload
            row.mapped_payload = letter.mapped_payload
            row.stage = letter.stage
            row.error_class = letter.error_class
            row.error_code = letter.error_code
            row.field = letter.field
            row.message = letter.message
            row.source_updated_at = to_utc(letter.source_updated_at)
            row.attempts = (row.attempts or 0) + 1
            row.updated_at = now

    @staticmethod
    def _resolve_dead_letters(session: Session, pipeline: str, source_ids: Sequence[str], now: datetime,
                              resolution: str) -> None:
        status = "replayed" if resolution == "replayed" else "resolved"
        for chunk in _chunks(list(source_ids)):
            session.execute(
                update(DeadLetterRow)
                .where(DeadLetterRow.pipeline == pipeline, DeadLetterRow.status == "open",
                       DeadLetterRow.source_id.in_(chunk))
                .values(status=status, resolution=resolution, resolved_at=now, updated_at=now)
                .execution_options(synchronize_session=False))

    def reverse_link_targets(self, reverse_pipeline: str, target_ids: Sequence[str]) -> dict[str, Link]:
        """The reverse pipeline's links whose target is one of these ids (two-way pairs), by target id."""
        found: dict[str, Link] = {}
        with self.session() as session:
            for chunk in _chunks(list(target_ids)):
                for row in session.scalars(select(LinkRow).where(LinkRow.pipeline == reverse_pipeline,
                                                                 LinkRow.target_id.in_(chunk))):
                    found[str(row.target_id)] = Link(row.source_id, row.target_id, row.match_key,
                                                     row.payload_hash, row.state, row.written_payload,
                                                     as_utc(row.updated_at))
        return found

    # -- conflicts -------------------------------------------------------------------------
    def list_conflicts(self, *, status: str | None = "held", limit: int = 100) -> list[Conflict]:
        with self.session() as session:
            query = select(ConflictRow).order_by(ConflictRow.id).limit(limit)
            if status is not None:
                query = query.where(ConflictRow.status == status)
            return [Conflict(row.pipeline, row.source_id, row.target_id, row.field, row.source_value,
                             row.target_value, row.base_value, row.rule, row.winner, row.id, row.status, row.run_id)
                    for row in session.scalars(query)]

    def held_conflict_keys(self, pipelines: Sequence[str]) -> set[tuple[str, str, str]]:
        """(pipeline, source id, field) of conflicts still held for review, so they are recorded once."""
        with self.session() as session:
            rows = session.execute(select(ConflictRow.pipeline, ConflictRow.source_id, ConflictRow.field).where(
                ConflictRow.status == "held", ConflictRow.pipeline.in_(list(pipelines))))
            return {(pipeline, source_id, field_name) for pipeline, source_id, field_name in rows}

    def close_conflict(self, conflict_id: int, winner: str) -> Conflict | None:
        with self.session() as session, session.begin():
            row = session.get(ConflictRow, conflict_id)
            if row is None or row.status != "held":
                return None
            row.status = "resolved"
            row.winner = winner
            row.resolved_at = utcnow()
            return Conflict(row.pipeline, row.source_id, row.target_id, row.field, row.source_value,
                            row.target_value, row.base_value, row.rule, row.winner, row.id, row.status, row.run_id)

    # -- dead letters ----------------------------------------------------------------------
    def list_dead_letters(self, *, pipeline: str | None = None, status: str | None = "open",
                          limit: int = 100, ids: Sequence[int] | None = None) -> list[DeadLetter]:
        with self.session() as session:
            query = select(DeadLetterRow).order_by(DeadLetterRow.id)
            if pipeline is not None:
                query = query.where(DeadLetterRow.pipeline == pipeline)
            if status is not None:
                query = query.where(DeadLetterRow.status == status)
            if ids is not None:
                query = query.where(DeadLetterRow.id.in_(list(ids)))
            return [_dead_letter(row) for row in session.scalars(query.limit(limit))]

    def get_dead_letter(self, letter_id: int) -> DeadLetter | None:
        with self.session() as session:
            row = session.get(DeadLetterRow, letter_id)
            return None if row is None else _dead_letter(row)

    def discard_dead_letters(self, ids: Sequence[int], *, reason: str, operator: str) -> list[int]:
        """Mark open dead letters discarded by a person, with the reason they gave, in the audit table (one
        transaction); returns the ids that were open."""
        now = utcnow()
        done: list[int] = []
        with self.session() as session, session.begin():
            for row in session.scalars(select(DeadLetterRow).where(DeadLetterRow.id.in_(list(ids)),
                                                                   DeadLetterRow.status == "open")):
                row.status = "discarded"
                row.resolution = "discarded"
                row.resolved_at = now
                row.updated_at = now
                done.append(row.id)
                session.add(DeadLetterAuditRow(dead_letter_id=row.id, action="discarded", reason=reason,
                                               operator=operator, at=now))
        return sorted(done)

    def close_dead_letters(self, pipeline: str, source_ids: Sequence[str], resolution: str) -> None:
        """Close open dead letters with a resolution that is not a delivery (`source_deleted`)."""
        with self.session() as session, session.begin():
            self._resolve_dead_letters(session, pipeline, source_ids, utcnow(), resolution)

    def dead_letter_audit(self, letter_id: int) -> list[dict[str, Any]]:
        """Every decision a person took about one dead letter, oldest first."""
        with self.session() as session:
            rows = session.scalars(select(DeadLetterAuditRow).where(DeadLetterAuditRow.dead_letter_id == letter_id)
                                   .order_by(DeadLetterAuditRow.id))
            return [{"action": r.action, "reason": r.reason, "operator": r.operator,
                     "at": r.at.replace(tzinfo=UTC).isoformat() if r.at.tzinfo is None else r.at.isoformat()}
                    for r in rows]

    def mark_replayed(self, pipeline: str, source_ids: Sequence[str]) -> None:
        with self.session() as session, session.begin():
            self._resolve_dead_letters(session, pipeline, source_ids, utcnow(), "replayed")

    def open_dead_letter_sources(self, pipeline: str) -> set[str]:
        """Source ids of the pipeline's open dead letters (a run reads them once, at its start)."""
        with self.session() as session:
            return set(session.scalars(select(DeadLetterRow.source_id).where(
                DeadLetterRow.pipeline == pipeline, DeadLetterRow.status == "open")))

    def open_dead_letters_by_pipeline(self) -> dict[str, int]:
        with self.session() as session:
            rows = session.execute(select(DeadLetterRow.pipeline, func.count()).where(
                DeadLetterRow.status == "open").group_by(DeadLetterRow.pipeline))
            return {pipeline: int(count) for pipeline, count in rows}

    def oldest_open_dead_letter_age_by_pipeline(self) -> dict[str, float]:
        now = utcnow()
        with self.session() as session:
            rows = session.execute(select(DeadLetterRow.pipeline, func.min(DeadLetterRow.created_at)).where(
                DeadLetterRow.status == "open").group_by(DeadLetterRow.pipeline))
            return {pipeline: (now - (as_utc(oldest) or now)).total_seconds() for pipeline, oldest in rows}

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, pipeline: str, trigger: str, cursor_before: Cursor | None) -> str:
        run_id = uuid.uuid4().hex[:16]
        with self.session() as session, session.begin():
            session.add(RunRow(id=run_id, pipeline=pipeline, trigger=trigger, started_at=utcnow(), status="running",
                               counts={}, cursor_before=format_cursor(cursor_before)))
        return run_id

    def finish_run(self, run_id: str, *, status: str, counts: dict[str, int], error: str | None,
                   cursor_after: Cursor | None) -> RunInfo:
        with self.session() as session, session.begin():
            row = session.get(RunRow, run_id)
            if row is None:
                raise StoreError(f"unknown run {run_id}")
            row.finished_at = utcnow()
            row.status = status
            row.counts = dict(counts)
            row.error = error
            row.cursor_after = format_cursor(cursor_after)
            return _run(row)

    def get_run(self, run_id: str) -> RunInfo | None:
        with self.session() as session:
            row = session.get(RunRow, run_id)
            return None if row is None else _run(row)

    def recent_runs(self, pipeline: str, limit: int = 10) -> list[RunInfo]:
        with self.session() as session:
            rows = session.scalars(select(RunRow).where(RunRow.pipeline == pipeline)
                                   .order_by(RunRow.started_at.desc()).limit(limit))
            return [_run(row) for row in rows]

    def last_run_times(self) -> dict[str, tuple[float | None, float | None]]:
        """Per pipeline: (last successful finish, last finish) as unix seconds."""
        result: dict[str, tuple[float | None, float | None]] = {}
        with self.session() as session:
            last = dict(session.execute(select(RunRow.pipeline, func.max(RunRow.finished_at))
                                        .where(RunRow.finished_at.is_not(None)).group_by(RunRow.pipeline)).all())
            ok = dict(session.execute(select(RunRow.pipeline, func.max(RunRow.finished_at))
                                      .where(RunRow.status == "success").group_by(RunRow.pipeline)).all())
        for pipeline, finished in last.items():
            success = as_utc(ok.get(pipeline))
            result[pipeline] = (success.timestamp() if success else None,
                                (as_utc(finished) or datetime.now(UTC)).timestamp())
        return result

    def schedule_intervals(self) -> dict[str, float]:
        return dict(self.schedule_interval_by_pipeline)

    def note_configured(self, pipelines: Iterable[str]) -> None:
        """Remember when each of these (scheduled) pipelines was first seen; later sightings keep the first."""
        names = set(pipelines)
        if not names:
            return
        now = utcnow()
        try:
            with self.session() as session, session.begin():
                known = set(session.scalars(select(ConfiguredPipelineRow.pipeline)))
                session.add_all(ConfiguredPipelineRow(pipeline=name, first_seen_at=now) for name in names - known)
        except SQLAlchemyError:
            # Two processes opening the same new config at once: the other one's row stands.
            return

    def configured_times(self) -> dict[str, float]:
        with self.session() as session:
            rows = session.execute(select(ConfiguredPipelineRow.pipeline, ConfiguredPipelineRow.first_seen_at))
            return {name: (as_utc(at) or utcnow()).timestamp() for name, at in rows}

    # -- drift: what each pipeline's last reconcile left (erphub_drift_records at scrape time) --------
    def record_drift(self, pipeline: str, counts: Mapping[str, int], finished_at: datetime) -> None:
        """Replace the pipeline's drift with what its reconcile just left (give every kind, 0 included)."""
        rows = [{"pipeline": pipeline, "kind": kind, "records": int(n), "reconciled_at": to_utc(finished_at)}
                for kind, n in counts.items()]
        with self.session() as session, session.begin():
            upsert(session, DriftRow.__table__, rows, conflict=("pipeline", "kind"),  # type: ignore[arg-type]
                   update=("records", "reconciled_at"))

    def last_drift(self) -> dict[str, tuple[float, dict[str, int]]]:
        """Per reconciled pipeline: (unix time its last reconcile finished, records left by kind)."""
        result: dict[str, tuple[float, dict[str, int]]] = {}
        with self.session() as session:
            for row in session.scalars(select(DriftRow)):
                if self.pipelines_in_config is not None and row.pipeline not in self.pipelines_in_config:
                    continue
                at = (as_utc(row.reconciled_at) or utcnow()).timestamp()
                previous, kinds = result.get(row.pipeline, (at, {}))
                kinds[row.kind] = row.records
                result[row.pipeline] = (max(previous, at), kinds)
        return result

    def link_count(self, pipeline: str) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count()).select_from(LinkRow).where(
                LinkRow.pipeline == pipeline, LinkRow.state == "synced")) or 0)

    def status(self, pipeline: str) -> dict[str, Any]:
        runs = self.recent_runs(pipeline, limit=1)
        cursor = self.get_cursor(pipeline)
        return {
            "pipeline": pipeline,
            "last_run": runs[0].as_dict() if runs else None,
            "cursor": None if cursor is None else {"updated_at": cursor.updated_at.isoformat(), "id": cursor.id},
            "open_dead_letters": self.open_dead_letters_by_pipeline().get(pipeline, 0),
            "linked_records": self.link_count(pipeline),
        }
