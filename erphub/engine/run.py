"""One run of a pipeline, batch by batch: map -> classify -> deliver -> commit. Plain Python, no Prefect.

    read_changes(since=cursor) ─► page ─► plan.apply ─► links: new / changed / unchanged
        ─► target.write(batch) ─► store.commit_batch(links + dead letters + cursor)

Nothing is lost: every record read is delivered, skipped (filter or unchanged), or in the
dead-letter store with its reason. A run that cannot go on raises RunFailed and leaves the cursor
where the last committed batch put it.

The other rooms of a batch have their own modules: `twoway` (echoes and conflicts of two-way fields),
`writeback` (the target's number back into the source) and `lease` (one run of a pipeline at a time).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from erphub.connectors.base import SupportsAcknowledge
from erphub.core.errors import ProtocolError
from erphub.core.outcomes import OUTCOMES, ErrorClass, Outcome, Stage
from erphub.core.records import (
    TARGET_META,
    CanonicalPayload,
    Cursor,
    JsonDict,
    Page,
    Record,
    RecordError,
    WriteAction,
    WriteRequest,
    WriteResult,
    hashed_payload,
    owned_part,
)
from erphub.engine.items import BatchWork, Classified
from erphub.engine.judge import differing_in_target, judges_by_target
from erphub.engine.keys import find_key_conflicts
from erphub.engine.lease import Lease
from erphub.engine.pipeline import Pipeline
from erphub.engine.twoway_batch import TwoWayBatch, agreed_after_write, paired_targets
from erphub.engine.window import BatchWindow
from erphub.engine.writeback import write_back
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.monitoring import metrics
from erphub.store import BatchCommit, LinkUpdate, NewDeadLetter, RunInfo, Store

log = structlog.get_logger("erphub.engine")

# The counts of the batch being prepared or worked on here (a thread of the window, or the main one).
_batch_counts: ContextVar[Counter[str] | None] = ContextVar("erphub_batch_counts", default=None)
# Counts not yet added to the metrics: a batch step adds them once at its end, not once per record
# (each increment of a multiprocess metric takes a lock and checks the pid).
_unmetered: ContextVar[Counter[str] | None] = ContextVar("erphub_unmetered_counts", default=None)

# What a run counts for a write the target accepted: "unchanged" when it applied nothing.
_OUTCOME_OF = {WriteAction.CREATED: Outcome.CREATED, WriteAction.UPDATED: Outcome.UPDATED,
               WriteAction.UNCHANGED: Outcome.UNCHANGED}


@dataclass
class PipelineRun:
    """One run of a pipeline, driven page by page (by `run_pipeline` or a Prefect flow)."""

    pipeline: Pipeline
    store: Store
    trigger: str = "manual"
    since: Cursor | None = None
    until: Cursor | None = None
    full: bool = False
    # Reconcile's repair: the target was found to differ, so a link whose hash matches is no proof of
    # "unchanged" and the record is written again.
    rewrite: bool = False
    on_progress: Callable[[dict[str, int]], None] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    run_id: str = ""
    started: float = 0.0
    _lease: Lease = field(init=False, repr=False)
    _open_letters: set[str] | None = field(default=None, repr=False)  # source ids with an open dead letter
    _counts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The source, when it is a handshake staging table. Asked once per run, not per batch: the
    # isinstance of a runtime-checkable Protocol cost 0.14 ms a batch (py-spy, bench (b)).
    _acknowledging: SupportsAcknowledge | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        p = self.pipeline
        self._lease = Lease(self.store, p.name, ttl_s=p.lease_ttl_s, wait_s=p.lease_wait_s)
        if isinstance(p.source, SupportsAcknowledge) and p.source.acknowledges(p.source_entity):
            self._acknowledging = p.source

    # -- lifecycle ---------------------------------------------------------------------------
    def begin(self) -> str:
        self.started = time.monotonic()
        self._lease.take()
        start_from = self.start_cursor()
        self.run_id = self.store.start_run(self.pipeline.name, self.trigger, start_from)
        self._open_letters = self.store.open_dead_letter_sources(self.pipeline.name)
        structlog.contextvars.bind_contextvars(pipeline=self.pipeline.name, run_id=self.run_id)
        read_from = self.read_from()
        log.info("run started", trigger=self.trigger, system=self.pipeline.source_system,
                 since=f"{start_from.updated_at.isoformat()}|{start_from.id}" if start_from else None,
                 reads_from=read_from.updated_at.isoformat() if read_from else None)
        return self.run_id

    def start_cursor(self) -> Cursor | None:
        if self.full:
            return None
        if self.since is not None:
            return self.since
        return self.store.get_cursor(self.pipeline.name)

    def read_from(self) -> Cursor | None:
        """Where the read starts: the saved cursor minus the overlap window (an explicit `since` as given).

        The saved cursor never moves back (store._advance_cursor), so the re-read costs a page of
        "unchanged" records and never a write.
        """
        start = self.start_cursor()
        if start is None or self.since is not None or self.pipeline.lag_s <= 0:
            return start
        return Cursor(start.updated_at - timedelta(seconds=self.pipeline.lag_s), "")

    def pages(self) -> Iterator[Page]:
        p = self.pipeline
        yield from p.source.read_changes(p.source_entity, self.read_from(), page_size=p.page_size,
                                         until=self.until)

    def finish(self, error: BaseException | None = None) -> RunInfo:
        self._lease.release()
        ok = error is None
        message = None if ok else self.pipeline.redact(f"{error.__class__.__name__}: {error}")
        # Plain-string keys: the stored counts and the log line read exactly as they always have.
        counts = {outcome.value: self.counts.get(outcome, 0) for outcome in OUTCOMES}
        info = self.store.finish_run(self.run_id, status="success" if ok else "failed", counts=counts,
                                     error=message, cursor_after=self.store.get_cursor(self.pipeline.name))
        duration = time.monotonic() - self.started
        metrics.observe_run(self.pipeline.name, ok=ok, duration_s=duration, finished_at=time.time())
        log_method = log.info if ok else log.error
        log_method("run finished", status=info.status, seconds=round(duration, 3), error=message, **counts)
        structlog.contextvars.unbind_contextvars("pipeline", "run_id")
        return info

    # -- work --------------------------------------------------------------------------------
    def process_page(self, page: Page) -> dict[str, int]:
        """Map, classify, write and commit one page, in batches of `batch_size` (all committed on return)."""
        with BatchWindow(self) as window:
            self.submit_page(page, window)
        return dict(self.counts)

    def submit_page(self, page: Page, window: BatchWindow) -> None:
        """Hand one page's batches to *window*; the last one carries the page's checkpoint."""
        for records, checkpoint in self.page_batches(page):
            window.submit(self.prepare(records, checkpoint))
        self.report_progress()

    def page_batches(self, page: Page) -> list[tuple[Sequence[Record], Cursor | None]]:
        """A page cut into batches of `batch_size`, in order; only the last carries the page's checkpoint
        (an empty page with a checkpoint is one empty batch: the cursor still moves)."""
        records = list(page.records)
        size = self.pipeline.batch_size
        if not records:
            return [([], page.checkpoint)] if page.checkpoint is not None else []
        return [(records[start:start + size], page.checkpoint if start + size >= len(records) else None)
                for start in range(0, len(records), size)]

    def batch_count(self, page: Page) -> int:
        """How many batches `page_batches` cuts the page into (by cutting it: one rule, not two)."""
        return len(self.page_batches(page))

    def report_progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(dict(self.counts))

    def process_batch(self, records: Sequence[Record], checkpoint: Cursor | None) -> None:
        self.commit(self.work(self.prepare(records, checkpoint)))

    def prepare(self, records: Sequence[Record], checkpoint: Cursor | None) -> BatchWork:
        """Map one batch (no I/O): what `BatchWindow` needs to tell which batches touch the same keys."""
        p = self.pipeline
        resolution = "replayed" if self.trigger == "replay" else "delivered"
        work = BatchWork(BatchCommit(p.name, self.run_id, cursor=checkpoint, resolution=resolution))
        token, unmetered = _batch_counts.set(work.counts), _unmetered.set(Counter())
        try:
            self._count(Outcome.READ, len(records))
            work.mapped = self._map(records, work)
        finally:
            _batch_counts.reset(token)
            self._meter(unmetered)
        keys = {f"key:{p.target.key_identity(p.target_entity, m.key)}" for _, m in work.mapped if m.key is not None}
        work.touched = frozenset({f"id:{record.id}" for record in records} | keys)
        return work

    def work(self, work: BatchWork) -> BatchWork:
        """Classify, look up, write (and write back) one mapped batch: the I/O, safe to run in a thread."""
        p = self.pipeline
        batch = work.commit
        token, unmetered = _batch_counts.set(work.counts), _unmetered.set(Counter())
        try:
            to_write = self._classify(work.mapped, batch)
            if to_write:
                self._deliver(to_write, work)
            if p.write_back is not None:
                refused = write_back(p, self.store, work.mapped, batch, self._lease.keep)
                if refused:
                    self._count(Outcome.DEAD_LETTERED, refused)
        finally:
            _batch_counts.reset(token)
            self._meter(unmetered)
        return work

    def _map(self, records: Sequence[Record], work: BatchWork) -> list[tuple[Record, Mapped]]:
        batch = work.commit
        mapped: dict[str, tuple[Record, Mapped]] = {}
        for record in records:
            try:
                result = self.pipeline.plan.apply(record.data)
            except Exception as exc:  # a plan must never raise; if one does, the record is kept, not lost
                result = Rejected(field="", reason=f"mapping crashed: {exc.__class__.__name__}: {exc}",
                                  code="mapping_crash")
            if not isinstance(result, Mapped):
                mapped.pop(record.id, None)  # a newer copy of a record read twice in one batch decides
            if isinstance(result, Skipped):
                self._count(Outcome.SKIPPED)
                work.skipped.append(record.id)
            elif isinstance(result, Rejected):
                batch.dead_letters.append(NewDeadLetter(
                    source_id=record.id, source_payload=record.data, mapped_payload=None, stage=Stage.MAP,
                    error_class=ErrorClass.MAPPING_REJECTED, error_code=result.code,
                    message=self.pipeline.redact(result.reason), field=result.field or None,
                    source_updated_at=record.updated_at))
                self._count(Outcome.DEAD_LETTERED)
            else:
                mapped[record.id] = (record, result)  # a record read twice in one batch: the newest wins
        return list(mapped.values())

    def _classify(self, mapped: Sequence[tuple[Record, Mapped]], batch: BatchCommit) -> list[Classified]:
        links = self.store.links_for(self.pipeline.name, [record.id for record, _ in mapped])
        to_write: list[Classified] = []
        judge_by_target: list[Classified] = []
        for record, result in mapped:
            canonical, digest = hashed_payload(result.data)
            link = links.get(record.id)
            if link is not None and link.source_updated_at is not None and record.updated_at < link.source_updated_at:
                self._count(Outcome.UNCHANGED)  # a copy older than what was delivered (a late push): stale
                continue
            if (not self.rewrite and link is not None and link.state == "synced" and link.target_id
                    and link.payload_hash == digest):
                if judges_by_target(self.pipeline, self.full):
                    judge_by_target.append(Classified(record, result, digest, link, canonical))
                    continue
                self._count(Outcome.UNCHANGED)
                batch.resolved_source_ids.append(record.id)
                continue
            to_write.append(Classified(record, result, digest, link, canonical))
        if judge_by_target:
            to_write += self._differing_in_target(judge_by_target, batch)
        return to_write

    def _differing_in_target(self, items: Sequence[Classified], batch: BatchCommit) -> list[Classified]:
        """Of records our links call unchanged, those the target now holds differently (engine.judge)."""
        differing = differing_in_target(self.pipeline, items, self._owned_part)
        same = [item for item in items if item.record.id not in differing]
        self._count(Outcome.UNCHANGED, len(same))
        batch.resolved_source_ids.extend(item.record.id for item in same)
        return [item for item in items if item.record.id in differing]

    def _deliver(self, items: Sequence[Classified], work: BatchWork) -> None:
        p, batch = self.pipeline, work.commit
        found = self._match_existing(items)
        items = self._refuse_key_conflicts(items, found, batch)
        targets = {item.record.id: self._known_target(item, found) for item in items}
        two_way: TwoWayBatch | None = None
        if p.two_way is not None:
            targets.update(paired_targets(p, self.store, items, targets))
            two_way = TwoWayBatch.look(p, self.store, targets, repair=self.rewrite)
        requests: list[WriteRequest] = []
        writing: list[Classified] = []
        for item in items:
            target_id = targets[item.record.id]
            if target_id is None and not p.create_missing:
                self._count(Outcome.SKIPPED)  # an update-only pipeline: the target has no such record
                continue
            data: dict[str, Any] | None = (item.mapped.data if target_id is None
                                           else self._owned_part(item.mapped.data))
            if two_way is not None and target_id is not None:
                data = two_way.to_write(item, target_id, data or {}, batch)
            if data is None:
                self._count(Outcome.UNCHANGED)  # nothing carries news (two-way echo or shared values)
                continue
            writing.append(item)
            requests.append(WriteRequest(
                source_id=item.record.id, key=item.mapped.key, target_id=target_id, data=data,
                idempotency_key=f"{p.name}:{item.record.id}:{item.digest[:16]}",
                owned_fields=p.plan.owned_fields, key_looked_up=item.mapped.key is not None,
                target_meta=self._target_meta(item, target_id)))
        if two_way is not None and two_way.pushes:
            self._lease.keep()
            self._count(Outcome.DEAD_LETTERED, two_way.push_winners(batch))  # the target's winners, back
        if not requests:
            return
        self._lease.keep()  # never write without holding the pipeline
        results = p.target.write(p.target_entity, requests)
        if len(results) != len(requests):
            raise ProtocolError(f"write returned {len(results)} results for {len(requests)} records",
                                system=p.target_system)
        for item, request, result in zip(writing, requests, results, strict=True):
            self._settle(item, request, result, batch)

    def _refuse_key_conflicts(self, items: Sequence[Classified], found: Mapping[str, str],
                              batch: BatchCommit) -> list[Classified]:
        """Records whose key is another source record's are dead letters, never written (engine.keys)."""
        conflicts = find_key_conflicts(self.pipeline, self.store, items, found)
        if not conflicts:
            return list(items)
        for conflict in conflicts:
            item = conflict.item
            batch.dead_letters.append(NewDeadLetter(
                source_id=item.record.id, source_payload=item.record.data, mapped_payload=item.mapped.data,
                stage=Stage.WRITE, error_class=ErrorClass.KEY_CONFLICT, error_code="key_conflict",
                message=self.pipeline.redact(conflict.message()), field=self.pipeline.plan.key_field,
                source_updated_at=item.record.updated_at))
        self._count(Outcome.DEAD_LETTERED, len(conflicts))
        refused = {conflict.item.record.id for conflict in conflicts}
        return [item for item in items if item.record.id not in refused]

    @staticmethod
    def _target_meta(item: Classified, target_id: str | None) -> JsonDict | None:
        """What the connector kept in the link about this very target record (line ids, say)."""
        if item.link is None or target_id is None or item.link.target_id != target_id:
            return None
        meta = (item.link.written_payload or {}).get(TARGET_META)
        return meta if isinstance(meta, dict) else None

    @staticmethod
    def _known_target(item: Classified, found: Mapping[str, str]) -> str | None:
        if item.link is not None and item.link.target_id:
            return item.link.target_id
        return found.get(item.mapped.key) if item.mapped.key is not None else None

    def _owned_part(self, data: dict[str, Any]) -> dict[str, Any]:
        """An update writes only the fields this pipeline owns (and the match key): never the other side's."""
        return owned_part(data, self.pipeline.plan.owned_fields, keep=(self.pipeline.key_top(),))

    def _match_existing(self, items: Sequence[Classified]) -> dict[str, str]:
        """Target ids, by match key, of records we have no link for yet.

        This is what the mapping's `key` means: a record the target already has (created before the
        hub, by another pipeline, or by our own create that landed just before a crash, before its
        link was committed) is updated, never created twice. Every create is looked up first, so that
        lookup is the crash recovery: no mark needs writing before the create is sent.
        """
        keys = [item.mapped.key for item in items
                if item.mapped.key is not None and (item.link is None or item.link.target_id is None)]
        if not keys:
            return {}
        return self.pipeline.target.lookup(self.pipeline.target_entity, keys)

    def _settle(self, item: Classified, request: WriteRequest, result: WriteResult, batch: BatchCommit) -> None:
        if result.ok:
            previous = item.link.written_payload if item.link and item.link.written_payload else {}
            written: dict[str, Any] = {**previous, **request.data}
            if not previous and result.target_meta is None and request.data is item.mapped.data:
                written = CanonicalPayload(written, item.canonical)  # the text hashed in _classify
            elif result.target_meta is not None:
                written[TARGET_META] = result.target_meta
            elif previous.get(TARGET_META) is not None and result.target_id != request.target_id:
                del written[TARGET_META]  # kept for another target record: not this one's
            batch.links.append(LinkUpdate(item.record.id, result.target_id, item.mapped.key, item.digest,
                                          written, source_updated_at=item.record.updated_at))
            batch.resolved_source_ids.append(item.record.id)
            batch.agreed.extend(agreed_after_write(self.pipeline, item.record.id, result.target_id, request.data))
            self._count(_OUTCOME_OF.get(result.action or WriteAction.CREATED, Outcome.CREATED))
            return
        error = result.error or RecordError("no_target_id", "the target accepted the record but returned no id")
        batch.dead_letters.append(NewDeadLetter(
            source_id=item.record.id, source_payload=item.record.data, mapped_payload=request.data,
            stage=Stage.WRITE,
            error_class=ErrorClass.TARGET_TRANSIENT if error.transient else ErrorClass.TARGET_REJECTED,
            error_code=error.code, message=self.pipeline.redact(error.message), field=error.field,
            source_updated_at=item.record.updated_at))
        self._count(Outcome.DEAD_LETTERED)

    def commit(self, work: BatchWork) -> None:
        """One transaction for the batch, then the lease is kept (renewed only when due: engine.lease),
        then a handshake source learns which rows were taken."""
        batch = work.commit
        if self._open_letters is not None:  # known since `begin`: no dead-letter query for a clean batch
            batch.open_letters = frozenset(self._open_letters.intersection(batch.resolved_source_ids))
        self.store.commit_batch(batch, self.pipeline.endpoints)
        if self._open_letters is not None and batch.open_letters is not None:
            failed = {letter.source_id for letter in batch.dead_letters}
            self._open_letters = (self._open_letters - batch.open_letters) | failed
        self._lease.keep()  # before the acknowledgement: it writes to the source
        self._acknowledge(work.commit, work.skipped)

    def _acknowledge(self, batch: BatchCommit, skipped: Sequence[str]) -> None:
        """Handshake-style staging tables learn, after our commit, which rows were taken and which failed."""
        source, entity = self._acknowledging, self.pipeline.source_entity
        if source is None:
            return
        failed = [letter.source_id for letter in batch.dead_letters]
        # A row the mapping's filter leaves out is handled too: left `new`, a handshake table (read
        # by status, not cursor) would offer it again on every run.
        done = sorted((set(batch.resolved_source_ids) | set(skipped)) - set(failed))
        if done:
            source.acknowledge(entity, done, ok=True)
        if failed:
            source.acknowledge(entity, failed, ok=False, error="dead-lettered: see erphub dlq")

    def _count(self, outcome: Outcome, n: int = 1) -> None:
        with self._counts_lock:  # batches of one run are written in threads
            self.counts[outcome] += n
        batch_counts = _batch_counts.get()
        if batch_counts is not None:  # only this batch's thread adds to it
            batch_counts[outcome] += n
        unmetered = _unmetered.get()
        if unmetered is None:
            metrics.count_records(self.pipeline.name, outcome, n)
        else:
            unmetered[outcome] += n

    def _meter(self, token: Token[Counter[str] | None]) -> None:
        """End a batch step: its counts go to the metrics at once."""
        counts = _unmetered.get()
        _unmetered.reset(token)
        for outcome, n in (counts or {}).items():
            metrics.count_records(self.pipeline.name, outcome, n)
