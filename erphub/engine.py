"""Run a pipeline: plain functions, no Prefect (flows/ wraps these per page).

    read_changes(since=cursor) ─► page ─► plan.apply ─► links: new / changed / unchanged
        ─► target.write(batch) ─► store.commit_batch(links + dead letters + cursor)

Nothing is lost: every record read is delivered, skipped (filter or unchanged), or in the
dead-letter store with its reason. A run that cannot go on raises RunFailed and leaves the cursor
where the last committed batch put it.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from erphub.connectors.base import Connector
from erphub.core.errors import PipelineBusy, ProtocolError, RunFailed
from erphub.core.records import (
    Cursor,
    Page,
    Record,
    RecordError,
    WriteAction,
    WriteRequest,
    WriteResult,
    payload_hash,
)
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.monitoring import metrics
from erphub.store import BatchCommit, Conflict, Link, LinkUpdate, NewDeadLetter, RunInfo, Store
from erphub.store.leases import owner_name
from erphub.twoway import MISSING, TwoWaySpec, agreed_values, reconcile

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
    two_way: TwoWaySpec | None = None
    write_back: tuple[str, str] | None = None  # (source field, "key" | "target_id")
    create_missing: bool = True
    lease_ttl_s: float = 300.0   # renewed after every batch; a crashed holder on this host is taken over
    lease_wait_s: float = 300.0  # how long a run waits for another run of the same pipeline to finish

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
    _held: set[tuple[str, str, str]] = field(default_factory=set)
    _lease_owner: str = ""

    # -- lifecycle ---------------------------------------------------------------------------
    def begin(self) -> str:
        self.started = time.monotonic()
        self._take_lease()
        start_from = self.start_cursor()
        self.run_id = self.store.start_run(self.pipeline.name, self.trigger, start_from)
        structlog.contextvars.bind_contextvars(pipeline=self.pipeline.name, run_id=self.run_id)
        log.info("run started", trigger=self.trigger, system=self.pipeline.source_system,
                 since=f"{start_from.updated_at.isoformat()}|{start_from.id}" if start_from else None)
        return self.run_id

    def _take_lease(self) -> None:
        """One run of a pipeline at a time (schedule, manual run and webhook deliveries alike)."""
        p = self.pipeline
        self._lease_owner = owner_name(uuid.uuid4().hex[:8])
        deadline = time.monotonic() + p.lease_wait_s
        announced = False
        while (holder := self.store.acquire_lease(p.name, self._lease_owner, p.lease_ttl_s)) is not None:
            if time.monotonic() >= deadline:
                raise PipelineBusy(f"pipeline {p.name} is busy: another run ({holder}) holds it")
            if not announced:
                log.info("waiting for another run of the pipeline to finish", pipeline=p.name, holder=holder)
                announced = True
            time.sleep(0.25)

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
        self.store.release_lease(self.pipeline.name, self._lease_owner)
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
        if p.write_back is not None:
            self._write_back(mapped, batch)
        self._commit(batch)

    def _map(self, records: Sequence[Record], batch: BatchCommit) -> list[tuple[Record, Mapped]]:
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
                self._count("skipped")
            elif isinstance(result, Rejected):
                batch.dead_letters.append(NewDeadLetter(
                    source_id=record.id, source_payload=record.data, mapped_payload=None, stage="map",
                    error_class="MappingRejected", error_code=result.code,
                    message=self.pipeline.redact(result.reason), field=result.field or None,
                    source_updated_at=record.updated_at))
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
            if link is not None and link.source_updated_at is not None and record.updated_at < link.source_updated_at:
                self._count("unchanged")  # a copy older than what was delivered (a late push): stale
                continue
            if link is not None and link.state == "synced" and link.target_id and link.payload_hash == digest:
                self._count("unchanged")
                batch.resolved_source_ids.append(record.id)
                continue
            to_write.append(_Classified(record, result, digest, link))
        return to_write

    def _deliver(self, items: Sequence[_Classified], batch: BatchCommit) -> None:
        p = self.pipeline
        found = self._match_existing(items)
        targets = {item.record.id: self._known_target(item, found) for item in items}
        if p.two_way is not None:
            targets.update(self._paired_targets(items, targets))
        current, reverse_links = self._two_way_context(targets)
        requests: list[WriteRequest] = []
        writing: list[_Classified] = []
        pending: list[tuple[str, str | None]] = []
        for item in items:
            target_id = targets[item.record.id]
            if target_id is None and not p.create_missing:
                self._count("skipped")  # an update-only pipeline: the target has no such record
                continue
            data: dict[str, Any] | None = (item.mapped.data if target_id is None
                                           else self._owned_part(item.mapped.data))
            if p.two_way is not None and target_id is not None:
                data = self._reconcile(item, target_id, data or {}, current, reverse_links, batch)
            if data is None:
                continue
            if target_id is None:
                pending.append((item.record.id, item.mapped.key))
            writing.append(item)
            requests.append(WriteRequest(
                source_id=item.record.id, key=item.mapped.key, target_id=target_id, data=data,
                idempotency_key=f"{p.name}:{item.record.id}:{item.digest[:16]}",
                owned_fields=p.plan.owned_fields))
        if not requests:
            return
        # Recorded before the write so a crash after the target accepted it is recovered by key lookup.
        self.store.mark_pending(p.name, p.endpoints, pending)
        self._keep_lease()  # never write without holding the pipeline
        results = p.target.write(p.target_entity, requests)
        if len(results) != len(requests):
            raise ProtocolError(f"write returned {len(results)} results for {len(requests)} records",
                                system=p.target_system)
        for item, request, result in zip(writing, requests, results, strict=True):
            self._settle(item, request, result, batch)

    @staticmethod
    def _known_target(item: _Classified, found: Mapping[str, str]) -> str | None:
        if item.link is not None and item.link.target_id:
            return item.link.target_id
        return found.get(item.mapped.key) if item.mapped.key is not None else None

    def _owned_part(self, data: dict[str, Any]) -> dict[str, Any]:
        """An update writes only the fields this pipeline owns (and the match key): never the other side's."""
        owned = self.pipeline.plan.owned_fields
        if owned is None:
            return data
        key_top = (self.pipeline.plan.key_field or "").split(".")[0]
        return {name: value for name, value in data.items() if name in owned or name == key_top}

    def _paired_targets(self, items: Sequence[_Classified], known: Mapping[str, str | None]) -> dict[str, str]:
        """Records the reverse pipeline created on our source side are linked through its links."""
        assert self.pipeline.two_way is not None
        unknown = [item.record.id for item in items if known.get(item.record.id) is None]
        if not unknown:
            return {}
        reverse = self.store.reverse_link_targets(self.pipeline.two_way.reverse, unknown)
        return {source_id: link.source_id for source_id, link in reverse.items()}

    def _two_way_context(self, targets: Mapping[str, str | None]) -> tuple[dict[str, Record], dict[str, Link]]:
        spec = self.pipeline.two_way
        ids = [t for t in targets.values() if t is not None]
        if spec is None or not ids:
            return {}, {}
        fetch = getattr(self.pipeline.target, "fetch", None)
        current = fetch(self.pipeline.target_entity, ids) if fetch is not None else {}
        self._held = self.store.held_conflict_keys([self.pipeline.name, spec.reverse])
        return current, self.store.links_for(spec.reverse, ids)

    def _reconcile(self, item: _Classified, target_id: str, data: dict[str, Any], current: Mapping[str, Record],
                   reverse_links: Mapping[str, Link], batch: BatchCommit) -> dict[str, Any] | None:
        """Drop echoes and settle conflicts on two-way fields; None when nothing is left to write."""
        spec = self.pipeline.two_way
        assert spec is not None
        ours, theirs = item.link, reverse_links.get(target_id)
        agreed = agreed_values(spec, ours=ours.written_payload if ours else None,
                               ours_at=ours.updated_at if ours else None,
                               theirs=theirs.written_payload if theirs else None,
                               theirs_at=theirs.updated_at if theirs else None)
        now = current.get(target_id)
        payload, conflicts = reconcile(spec, data, current=now.data if now else None, agreed=agreed,
                                       source_is_newer=now is None or item.record.updated_at >= now.updated_at)
        for conflict in conflicts:
            mirror = (spec.reverse, target_id, spec.fields[conflict.field])
            if conflict.winner is None and ((self.pipeline.name, item.record.id, conflict.field) in self._held
                                            or mirror in self._held):
                continue  # already waiting for a person; record it once
            self._held.add((self.pipeline.name, item.record.id, conflict.field))
            batch.conflicts.append(Conflict(self.pipeline.name, item.record.id, target_id, conflict.field,
                                            conflict.source_value, conflict.target_value, conflict.base_value,
                                            spec.rule, conflict.winner))
            metrics.count_conflict(self.pipeline.name, "held" if conflict.winner is None else spec.rule)
        key_top = (self.pipeline.plan.key_field or "").split(".")[0]
        last_written = ours.written_payload or {} if ours else {}
        # Only what changed since our last write travels: an unchanged owned field is not news either.
        payload = {name: value for name, value in payload.items()
                   if name == key_top or name in spec.fields or last_written.get(name, MISSING) != value}
        if any(name != key_top for name in payload):
            return payload
        # Nothing carries news: our own write read back, or values both sides already share.
        written = dict(ours.written_payload or {}) if ours else {}
        batch.links.append(LinkUpdate(item.record.id, target_id, item.mapped.key, item.digest, written,
                                      source_updated_at=item.record.updated_at))
        batch.resolved_source_ids.append(item.record.id)
        self._count("unchanged")
        return None

    def _match_existing(self, items: Sequence[_Classified]) -> dict[str, str]:
        """Target ids, by match key, of records we have no link for yet.

        This is what the mapping's `key` means: a record the target already has (created before the
        hub, by another pipeline, or by our own create that landed just before a crash left its link
        pending) is updated, never created twice.
        """
        keys = [item.mapped.key for item in items
                if item.mapped.key is not None and (item.link is None or item.link.target_id is None)]
        if not keys:
            return {}
        found = self.pipeline.target.lookup(self.pipeline.target_entity, keys)
        recovered = sum(1 for item in items if item.link is not None and item.link.state == "pending"
                        and item.mapped.key in found)
        if recovered:
            log.info("recovered pending writes by key", recovered=recovered, checked=len(keys))
        return found

    def _settle(self, item: _Classified, request: WriteRequest, result: WriteResult, batch: BatchCommit) -> None:
        if result.ok:
            previous = item.link.written_payload if item.link and item.link.written_payload else {}
            batch.links.append(LinkUpdate(item.record.id, result.target_id, item.mapped.key, item.digest,
                                          {**previous, **request.data},
                                          source_updated_at=item.record.updated_at))
            batch.resolved_source_ids.append(item.record.id)
            self._count("updated" if result.action == WriteAction.UPDATED else "created")
            return
        error = result.error or RecordError("no_target_id", "the target accepted the record but returned no id")
        batch.dead_letters.append(NewDeadLetter(
            source_id=item.record.id, source_payload=item.record.data, mapped_payload=request.data, stage="write",
            error_class="TargetTransient" if error.transient else "TargetRejected", error_code=error.code,
            message=self.pipeline.redact(error.message), field=error.field,
            source_updated_at=item.record.updated_at))
        self._count("dead_lettered")

    def _write_back(self, mapped: Sequence[tuple[Record, Mapped]], batch: BatchCommit) -> None:
        """Put the target's number for each delivered record into the source record (both sides see the link)."""
        p = self.pipeline
        assert p.write_back is not None
        field_name, kind = p.write_back
        dead = {letter.source_id for letter in batch.dead_letters}
        known = {link.source_id: (link.target_id, link.match_key) for link in batch.links if link.target_id}
        earlier = [record.id for record, _ in mapped if record.id not in known and record.id not in dead]
        for source_id, link in self.store.links_for(p.name, earlier).items():  # unchanged: linked before
            if link.target_id:
                known[source_id] = (link.target_id, link.match_key)
        requests: list[WriteRequest] = []
        records: list[Record] = []
        for record, outcome in mapped:
            if record.id not in known:
                continue
            target_id, match_key = known[record.id]
            value = target_id if kind == "target_id" else (outcome.key or match_key)
            if value is None or str(record.data.get(field_name) or "") == str(value):
                continue  # already there: no write, and so no echo either
            records.append(record)
            requests.append(WriteRequest(source_id=record.id, key=None, target_id=record.id,
                                         data={field_name: value}, idempotency_key=f"{p.name}:wb:{record.id}",
                                         owned_fields=frozenset({field_name})))
        if not requests:
            return
        results = p.source.write(p.source_entity, requests)
        for record, request, written in zip(records, requests, results, strict=True):
            if written.error is not None:
                batch.dead_letters.append(NewDeadLetter(
                    source_id=record.id, source_payload=record.data, mapped_payload=request.data, stage="write_back",
                    error_class="SourceRejected", error_code=written.error.code,
                    message=p.redact(written.error.message), field=field_name,
                    source_updated_at=record.updated_at))
                self._count("dead_lettered")

    def _commit(self, batch: BatchCommit) -> None:
        self.store.commit_batch(batch, self.pipeline.endpoints)
        self._acknowledge(batch)
        self._keep_lease()

    def _keep_lease(self) -> None:
        """Renew our lease; stop at once if it was lost (a batch outlived the TTL and another run began)."""
        if not self.store.renew_lease(self.pipeline.name, self._lease_owner, self.pipeline.lease_ttl_s):
            raise PipelineBusy(f"pipeline {self.pipeline.name}: this run lost its lease to another run")

    def _acknowledge(self, batch: BatchCommit) -> None:
        """Handshake-style staging tables learn, after our commit, which rows were taken and which failed."""
        acknowledge = getattr(self.pipeline.source, "acknowledge", None)
        if acknowledge is None or not getattr(self.pipeline.source, "acknowledges", lambda _e: False)(
                self.pipeline.source_entity):
            return
        failed = [letter.source_id for letter in batch.dead_letters]
        done = sorted(set(batch.resolved_source_ids) - set(failed))
        if done:
            acknowledge(self.pipeline.source_entity, done, ok=True)
        if failed:
            acknowledge(self.pipeline.source_entity, failed, ok=False, error="dead-lettered: see erphub dlq")

    def _count(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n
        metrics.count_records(self.pipeline.name, outcome, n)


def _begin(run: PipelineRun) -> None:
    """Start a run; a pipeline busy for longer than its lease wait is a failed run, not a crash."""
    try:
        run.begin()
    except PipelineBusy as exc:
        raise RunFailed(str(exc), pipeline=run.pipeline.name, run_id="-", cause=exc) from None


def drive_run(run: PipelineRun, work: Callable[[], None]) -> RunInfo:
    """Begin, work, finish. Whatever stops the work is recorded on the run and releases the pipeline:
    an error becomes RunFailed (the CLI's exit 1, the worker's retry), an interrupt is re-raised."""
    _begin(run)
    try:
        work()
    except Exception as exc:
        info = run.finish(exc)
        raise RunFailed(info.error or str(exc), pipeline=run.pipeline.name, run_id=run.run_id, cause=exc) from None
    except BaseException as exc:  # Ctrl-C, SystemExit: still leave a finished run and a free pipeline
        run.finish(exc)
        raise
    return run.finish()


def run_pipeline(pipeline: Pipeline, store: Store, *, trigger: str = "manual", since: datetime | None = None,
                 until: datetime | None = None, full: bool = False,
                 on_progress: Callable[[dict[str, int]], None] | None = None) -> RunInfo:
    """Run one pipeline to the end; raise RunFailed (after recording the failed run) if it cannot go on."""
    run = PipelineRun(pipeline, store, trigger=trigger, full=full, on_progress=on_progress,
                      since=Cursor(since) if since else None, until=Cursor(until, "\uffff") if until else None)

    def work() -> None:
        for page in run.pages():
            run.process_page(page)

    return drive_run(run, work)


def replay_dead_letters(pipeline: Pipeline, store: Store, ids: Sequence[int] | None = None) -> RunInfo:
    """Send open dead letters of a pipeline through mapping and delivery again, from their kept payloads."""
    letters = store.list_dead_letters(pipeline=pipeline.name, status="open", limit=100_000, ids=ids)
    records = [Record(letter.source_id, letter.source_updated_at or letter.created_at, letter.source_payload)
               for letter in letters]
    run = PipelineRun(pipeline, store, trigger="replay")

    def work() -> None:
        for start in range(0, len(records), pipeline.batch_size):
            run.process_batch(records[start:start + pipeline.batch_size], None)

    return drive_run(run, work)


def deliver_records(pipeline: Pipeline, store: Store, records: Sequence[Record], *,
                    trigger: str = "webhook") -> RunInfo:
    """Map and deliver records that arrived by push (webhook events), without touching the cursor."""
    run = PipelineRun(pipeline, store, trigger=trigger)

    def work() -> None:
        for start in range(0, len(records), pipeline.batch_size):
            run.process_batch(records[start:start + pipeline.batch_size], None)

    return drive_run(run, work)
