"""Run a pipeline: plain functions, no Prefect (flows/ wraps these per page).

    read_changes(since=cursor) ─► page ─► plan.apply ─► links: new / changed / unchanged
        ─► target.write(batch) ─► store.commit_batch(links + dead letters + cursor)

Nothing is lost: every record read is delivered, skipped (filter or unchanged), or in the
dead-letter store with its reason. A run that cannot go on raises RunFailed and leaves the cursor
where the last committed batch put it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from connectors.base import Connector
from erphub.errors import ConnectorError, ErphubError, ProtocolError, RunFailed, StoreError
from erphub.records import Cursor, Page, Record, RecordError, WriteAction, WriteRequest, WriteResult, payload_hash
from erphub.store import BatchCommit, Link, LinkUpdate, NewDeadLetter, RunInfo, Store
from mappings.plan import Mapped, Rejected, Skipped
from monitoring import metrics

log = structlog.get_logger("erphub.engine")

OUTCOMES = ("read", "created", "updated", "unchanged", "skipped", "dead_lettered")


class PlanLike(Protocol):
    key_field: str | None
    owned_fields: frozenset[str] | None

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped: ...


@dataclass
class Pipeline:
    """The runtime pieces of one configured pipeline."""

    name: str
    source_system: str
    source_entity: str
    source: Connector
    target_system: str
    target_entity: str
    target: Connector
    plan: PlanLike
    batch_size: int = 100
    page_size: int = 100
    redact: Callable[[str], str] = str

    @property
    def endpoints(self) -> tuple[str, str, str, str]:
        return (self.source_system, self.source_entity, self.target_system, self.target_entity)


@dataclass
class _Classified:
    record: Record
    mapped: Mapped
    digest: str
    link: Link | None


@dataclass
class PipelineRun:
    """One run of a pipeline, driven page by page (by `run_pipeline` or a Prefect flow)."""

    pipeline: Pipeline
    store: Store
    trigger: str = "manual"
    since: Cursor | None = None
    until: Cursor | None = None
    full: bool = False
    on_progress: Callable[[dict[str, int]], None] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    run_id: str = ""
    started: float = 0.0
    cursor_after: Cursor | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def begin(self) -> str:
        self.started = time.monotonic()
        start_from = self.start_cursor()
        self.run_id = self.store.start_run(self.pipeline.name, self.trigger, start_from)
        structlog.contextvars.bind_contextvars(pipeline=self.pipeline.name, run_id=self.run_id)
        log.info("run started", trigger=self.trigger, since=start_from.key() if start_from else None,
                 system=self.pipeline.source_system)
        return self.run_id

    def start_cursor(self) -> Cursor | None:
        if self.full:
            return None
        if self.since is not None:
            return self.since
        return self.store.get_cursor(self.pipeline.name)

    def pages(self) -> Iterator[Page]:
        p = self.pipeline
        yield from p.source.read_changes(p.source_entity, self.start_cursor(), page_size=p.page_size,
                                         until=self.until)

    def finish(self, error: BaseException | None = None) -> RunInfo:
        ok = error is None
        message = None if ok else self.pipeline.redact(f"{error.__class__.__name__}: {error}")
        info = self.store.finish_run(self.run_id, status="success" if ok else "failed",
                                     counts={k: self.counts.get(k, 0) for k in OUTCOMES}, error=message,
                                     cursor_after=self.store.get_cursor(self.pipeline.name))
        duration = time.monotonic() - self.started
        metrics.observe_run(self.pipeline.name, ok=ok, duration_s=duration, finished_at=time.time())
        log_method = log.info if ok else log.error
        log_method("run finished", status=info.status, seconds=round(duration, 3), error=message,
                   **{k: self.counts.get(k, 0) for k in OUTCOMES})
        structlog.contextvars.unbind_contextvars("pipeline", "run_id")
        return info

    # -- work --------------------------------------------------------------------------------
    def process_page(self, page: Page) -> dict[str, int]:
        """Map, classify, write and commit one page, in batches of `batch_size`."""
        records = list(page.records)
        size = self.pipeline.batch_size
        if not records and page.checkpoint is not None:
            self._commit(BatchCommit(self.pipeline.name, self.run_id, cursor=page.checkpoint))
        for start in range(0, len(records), size):
            is_last = start + size >= len(records)
            self.process_batch(records[start:start + size], page.checkpoint if is_last else None)
        if self.on_progress is not None:
            self.on_progress(dict(self.counts))
        return dict(self.counts)

    def process_batch(self, records: Sequence[Record], checkpoint: Cursor | None) -> None:
        p = self.pipeline
        resolution = "replayed" if self.trigger == "replay" else "delivered"
        batch = BatchCommit(p.name, self.run_id, cursor=checkpoint, resolution=resolution)
        self._count("read", len(records))
        mapped = self._map(records, batch)
        to_write = self._classify(mapped, batch)
        if to_write:
            self._deliver(to_write, batch)
        self._commit(batch)

    def _map(self, records: Sequence[Record], batch: BatchCommit) -> list[tuple[Record, Mapped]]:
        mapped: dict[str, tuple[Record, Mapped]] = {}
        for record in records:
            try:
                result = self.pipeline.plan.apply(record.data)
            except Exception as exc:  # a plan must never raise; if one does, the record is kept, not lost
                result = Rejected(field="", reason=f"mapping crashed: {exc.__class__.__name__}: {exc}",
                                  code="mapping_crash")
            if isinstance(result, Skipped):
                self._count("skipped")
            elif isinstance(result, Rejected):
                batch.dead_letters.append(NewDeadLetter(
                    source_id=record.id, source_payload=record.data, mapped_payload=None, stage="map",
                    error_class="MappingRejected", error_code=result.code,
                    message=self.pipeline.redact(result.reason), field=result.field or None))
                self._count("dead_lettered")
            else:
                mapped[record.id] = (record, result)  # a record read twice in one batch: the newest wins
        return list(mapped.values())

    def _classify(self, mapped: Sequence[tuple[Record, Mapped]], batch: BatchCommit) -> list[_Classified]:
        links = self.store.links_for(self.pipeline.name, [record.id for record, _ in mapped])
        to_write: list[_Classified] = []
        for record, result in mapped:
            digest = payload_hash(result.data)
            link = links.get(record.id)
            if link is not None and link.state == "synced" and link.target_id and link.payload_hash == digest:
                self._count("unchanged")
                batch.resolved_source_ids.append(record.id)
                continue
            to_write.append(_Classified(record, result, digest, link))
        return to_write

    def _deliver(self, items: Sequence[_Classified], batch: BatchCommit) -> None:
        p = self.pipeline
        found = self._recover_pending(items)
        requests: list[WriteRequest] = []
        pending: list[tuple[str, str | None]] = []
        for item in items:
            target_id = item.link.target_id if item.link and item.link.target_id else None
            if target_id is None and item.mapped.key is not None:
                target_id = found.get(item.mapped.key)
            if target_id is None:
                pending.append((item.record.id, item.mapped.key))
            requests.append(WriteRequest(
                source_id=item.record.id, key=item.mapped.key, target_id=target_id, data=item.mapped.data,
                idempotency_key=f"{p.name}:{item.record.id}:{item.digest[:16]}",
                owned_fields=p.plan.owned_fields))
        # Recorded before the write so a crash after the target accepted it is recovered by key lookup.
        self.store.mark_pending(p.name, p.endpoints, pending)
        results = p.target.write(p.target_entity, requests)
        if len(results) != len(requests):
            raise ProtocolError(f"write returned {len(results)} results for {len(requests)} records",
                                system=p.target_system)
        for item, request, result in zip(items, requests, results, strict=True):
            self._settle(item, request, result, batch)

    def _recover_pending(self, items: Sequence[_Classified]) -> dict[str, str]:
        """Target ids for records whose create may have landed before a crash (pending links)."""
        keys = [item.mapped.key for item in items
                if item.mapped.key is not None and (item.link is None or item.link.target_id is None)
                and item.link is not None and item.link.state == "pending"]
        if not keys:
            return {}
        found = self.pipeline.target.lookup(self.pipeline.target_entity, keys)
        if found:
            log.info("recovered pending writes by key", recovered=len(found), checked=len(keys))
        return found

    def _settle(self, item: _Classified, request: WriteRequest, result: WriteResult, batch: BatchCommit) -> None:
        if result.ok:
            batch.links.append(LinkUpdate(item.record.id, result.target_id, item.mapped.key, item.digest,
                                          item.mapped.data))
            batch.resolved_source_ids.append(item.record.id)
            self._count("updated" if result.action == WriteAction.UPDATED else "created")
            return
        error = result.error or RecordError("no_target_id", "the target accepted the record but returned no id")
        batch.dead_letters.append(NewDeadLetter(
            source_id=item.record.id, source_payload=item.record.data, mapped_payload=request.data, stage="write",
            error_class="TargetTransient" if error.transient else "TargetRejected", error_code=error.code,
            message=self.pipeline.redact(error.message), field=error.field))
        self._count("dead_lettered")

    def _commit(self, batch: BatchCommit) -> None:
        self.store.commit_batch(batch, self.pipeline.endpoints)
        if batch.cursor is not None:
            self.cursor_after = batch.cursor

    def _count(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n
        metrics.count_records(self.pipeline.name, outcome, n)


def run_pipeline(pipeline: Pipeline, store: Store, *, trigger: str = "manual", since: datetime | None = None,
                 until: datetime | None = None, full: bool = False,
                 on_progress: Callable[[dict[str, int]], None] | None = None) -> RunInfo:
    """Run one pipeline to the end; raise RunFailed (after recording the failed run) if it cannot go on."""
    run = PipelineRun(pipeline, store, trigger=trigger, full=full, on_progress=on_progress,
                      since=Cursor(since) if since else None, until=Cursor(until, "\uffff") if until else None)
    run.begin()
    try:
        for page in run.pages():
            run.process_page(page)
    except (ErphubError, OSError) as exc:
        info = run.finish(exc)
        raise RunFailed(info.error or str(exc), pipeline=pipeline.name, run_id=run.run_id, cause=exc) from None
    return run.finish()


def replay_dead_letters(pipeline: Pipeline, store: Store, ids: Sequence[int] | None = None) -> RunInfo:
    """Send open dead letters of a pipeline through mapping and delivery again, from their kept payloads."""
    letters = store.list_dead_letters(pipeline=pipeline.name, status="open", limit=100_000, ids=ids)
    run = PipelineRun(pipeline, store, trigger="replay")
    run.begin()
    try:
        records = [Record(letter.source_id, letter.updated_at, letter.source_payload) for letter in letters]
        for start in range(0, len(records), pipeline.batch_size):
            chunk = records[start:start + pipeline.batch_size]
            run.process_batch(chunk, None)
    except (ConnectorError, StoreError, OSError) as exc:
        info = run.finish(exc)
        raise RunFailed(info.error or str(exc), pipeline=pipeline.name, run_id=run.run_id, cause=exc) from None
    return run.finish()


def deliver_records(pipeline: Pipeline, store: Store, records: Sequence[Record], *, trigger: str = "webhook") -> RunInfo:
    """Map and deliver records that arrived by push (webhook events), without touching the cursor."""
    run = PipelineRun(pipeline, store, trigger=trigger)
    run.begin()
    try:
        for start in range(0, len(records), pipeline.batch_size):
            run.process_batch(records[start:start + pipeline.batch_size], None)
    except (ErphubError, OSError) as exc:
        info = run.finish(exc)
        raise RunFailed(info.error or str(exc), pipeline=pipeline.name, run_id=run.run_id, cause=exc) from None
    return run.finish()
