"""The inbox worker: delivers accepted push events through their pipelines, in a background thread.

A pass claims due pending events, groups them by the pipelines still waiting for them, and hands
each group to `engine.deliver_records` (mapping, links, per-record dead letters). When a whole
delivery fails (the target is down: RunFailed), its events stay pending with exponential backoff;
after `max_attempts` they go to the dead-letter store with stage "inbox", so nothing is lost and
`erphub dlq replay` can send them later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from erphub.config.models import InboxSettings
from erphub.core.errors import RunFailed
from erphub.core.outcomes import ErrorClass, Stage
from erphub.core.records import Record, utcnow
from erphub.engine import Pipeline, apply_deletions, deliver_records
from erphub.store import BatchCommit, NewDeadLetter, Store
from erphub.webhooks import inbox
from erphub.webhooks.inbox import InboxEvent, Settlement

log = structlog.get_logger("erphub.webhooks.worker")

# Push operations that mean "this record was deleted in the source" (Jiandaoyun's `data_remove`).
DELETE_OPS = frozenset({"data_remove"})


@dataclass
class PassResult:
    """Counts of one pass, by event and pipeline pair."""

    claimed: int = 0
    delivered: int = 0
    superseded: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    errors: list[str] = field(default_factory=list)


def event_record(event: InboxEvent) -> Record:
    return Record(id=event.record_id, updated_at=event.record_updated_at, data=event.payload)


class InboxWorker:
    def __init__(self, store: Store, pipeline_for: Callable[[str], Pipeline],
                 settings: InboxSettings | None = None, *, redact: Callable[[str], str] = str,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.pipeline_for = pipeline_for
        self.settings = settings or InboxSettings()
        self.redact = redact
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    # -- one pass ----------------------------------------------------------------------------
    def run_once(self) -> PassResult:
        """Deliver what is due now; never raises for a delivery problem (it is recorded instead)."""
        result = PassResult()
        now = self.clock()
        events = inbox.claim_due(self.store, limit=self.settings.batch_size, now=now)
        result.claimed = len(events)
        if not events:
            return result
        groups: dict[str, list[InboxEvent]] = {}
        for ev in events:
            for name in ev.remaining:
                groups.setdefault(name, []).append(ev)
        outcome = Settlement()
        for name in sorted(groups):
            self._deliver_group(name, groups[name], outcome, result)
        inbox.settle(self.store, outcome, base_delay_s=self.settings.base_delay_s,
                     max_delay_s=self.settings.max_delay_s, now=now)
        self.passes += 1
        return result

    def drain(self, max_passes: int = 100) -> PassResult:
        """Passes until nothing is due (tests and shutdown); counts summed."""
        total = PassResult()
        for _ in range(max_passes):
            one = self.run_once()
            if one.claimed == 0:
                break
            for name in ("claimed", "delivered", "superseded", "retrying", "dead_lettered"):
                setattr(total, name, getattr(total, name) + getattr(one, name))
            total.errors.extend(one.errors)
            if one.delivered == 0 and one.superseded == 0 and one.dead_lettered == 0:
                break  # everything left is backing off
        return total

    def _deliver_group(self, name: str, events: Sequence[InboxEvent], outcome: Settlement,
                       result: PassResult) -> None:
        try:
            pipeline = self.pipeline_for(name)
        except Exception as exc:  # the pipeline was removed from the config or cannot be built
            self._failed(name, None, events, f"{exc.__class__.__name__}: {exc}", "", outcome, result)
            return
        superseded = inbox.delivered_newer(self.store, name, events)
        for ev in events:
            if ev.id in superseded:
                outcome.done(ev.id, name)
                result.superseded += 1
        live = [ev for ev in events if ev.id not in superseded]
        removed = [ev for ev in live if ev.op in DELETE_OPS]
        if removed and not self._delete(name, pipeline, removed, outcome, result):
            return
        live = [ev for ev in live if ev.op not in DELETE_OPS]
        if not live:
            return
        # Oldest change first, so when one record changed twice in the batch the newest is what lands.
        records = [event_record(ev) for ev in sorted(live, key=lambda e: (e.record_updated_at, e.id))]
        try:
            info = deliver_records(pipeline, self.store, records, trigger="webhook")
        except RunFailed as exc:
            self._failed(name, pipeline, live, str(exc), exc.run_id, outcome, result)
            return
        except Exception as exc:  # a bug must not kill the thread or lose events: retry, then dead letters
            log.exception("inbox delivery crashed", pipeline=name)
            self._failed(name, pipeline, live, f"{exc.__class__.__name__}: {exc}", "", outcome, result)
            return
        for ev in live:
            outcome.done(ev.id, name)
        result.delivered += len(live)
        log.info("webhook events delivered", pipeline=name, events=len(live), run_id=info.id,
                 **{k: v for k, v in info.counts.items() if v})

    def _delete(self, name: str, pipeline: Pipeline, events: Sequence[InboxEvent], outcome: Settlement,
                result: PassResult) -> bool:
        """A record removed in the source: the pipeline's `on_delete` (ignore: the event is simply done)."""
        try:
            applied = apply_deletions(pipeline, self.store, [ev.record_id for ev in events])
        except Exception as exc:  # the target is down: retry like a failed delivery
            self._failed(name, pipeline, events, f"{exc.__class__.__name__}: {exc}", "", outcome, result)
            return False
        for ev in events:
            outcome.done(ev.id, name)
        result.delivered += len(events)
        log.info("webhook deletions handled", pipeline=name, events=len(events), mode=pipeline.on_delete,
                 applied=applied)
        return True

    def _failed(self, name: str, pipeline: Pipeline | None, events: Sequence[InboxEvent], error: str,
                run_id: str, outcome: Settlement, result: PassResult) -> None:
        message = self.redact(error)
        result.errors.append(message)
        final = [ev for ev in events if ev.attempts + 1 >= self.settings.max_attempts]
        final_ids = {ev.id for ev in final}
        for ev in events:
            if ev.id not in final_ids:
                outcome.fail(ev.id, name, message)
                result.retrying += 1
        if final:
            self._dead_letter(name, pipeline, final, message, run_id)
            for ev in final:
                outcome.give_up(ev.id, name)
                outcome.fail(ev.id, name, message)
            result.dead_lettered += len(final)
        log.warning("webhook delivery failed", pipeline=name, events=len(events),
                    retrying=len(events) - len(final), dead_lettered=len(final), error=message)

    def _dead_letter(self, name: str, pipeline: Pipeline | None, events: Sequence[InboxEvent], message: str,
                     run_id: str) -> None:
        batch = BatchCommit(name, run_id or f"inbox-{self.clock():%Y%m%dT%H%M%S}")
        for ev in events:
            batch.dead_letters.append(NewDeadLetter(
                source_id=ev.record_id, source_payload=ev.payload, mapped_payload=None, stage=Stage.INBOX,
                error_class=ErrorClass.INBOX_GAVE_UP, error_code="max_attempts",
                message=f"gave up after {ev.attempts + 1} attempts (delivery {ev.deliver_id}): {message}",
                source_updated_at=ev.record_updated_at))  # replay keeps the record's own change time
        endpoints = pipeline.endpoints if pipeline is not None else ("", "", "", "")
        self.store.commit_batch(batch, endpoints)

    # -- thread ------------------------------------------------------------------------------
    def notify(self) -> None:
        """Wake the thread now (the receiver calls this after committing an event)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="erphub-inbox-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        last_purge = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                while not self._stop.is_set():
                    done = self.run_once()
                    if done.claimed < self.settings.batch_size or done.delivered == 0:
                        break
                now = self.clock()
                if now.timestamp() - last_purge > 3600:
                    last_purge = now.timestamp()
                    inbox.purge_finished(self.store, older_than_s=self.settings.retention_s, now=now)
            except Exception as exc:  # the store blinked: keep the thread, try again on the next tick
                log.error("inbox worker pass failed", error=self.redact(f"{exc.__class__.__name__}: {exc}"))
