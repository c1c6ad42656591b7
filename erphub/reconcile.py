"""Reconcile: the other side is the judge. Compare what the source says with what the target holds.

    source.read_changes(since=None) ─► plan.apply (mapping + filter, as a run) ─► target id (link or key)
        ─► target.fetch(ids) ─► compare the owned fields ─► missing | different
    links whose source record is gone (confirmed by source.fetch when it can) ─► extra

Everything is done a page at a time (the source's pages, one fetch per page, links `page_size` at a
time), so a large pipeline never sits in memory whole; only the source ids seen are kept, to find the
extras. `repair` sends missing and different records through the normal write path (`deliver_records`:
links, dead letters, metrics, the pipeline's lease) and then checks again: the report counts the drift
found and what was repaired, `left` (and the drift metric) what the second look still found. Extras
are repaired by the pipeline's `on_delete` (`engine.deletions`); under `ignore` they stay reported.
"""

from __future__ import annotations

import time as clock
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from erphub.connectors.base import SupportsFetch
from erphub.core.errors import ConfigError, PipelineBusy
from erphub.core.records import Record
from erphub.engine import Pipeline, apply_deletions, deliver_records
from erphub.mappings.plan import Mapped
from erphub.monitoring import metrics
from erphub.reconcile_compare import differing_fields, same_value
from erphub.store import Store

log = structlog.get_logger("erphub.reconcile")

MISSING, DIFFERENT, EXTRA = "missing", "different", "extra"
__all__ = ["DIFFERENT", "EXTRA", "MISSING", "DriftItem", "Report", "compare", "differing_fields", "reconcile",
           "same_value"]


@dataclass(frozen=True, slots=True)
class DriftItem:
    key: str
    kind: str
    fields: tuple[str, ...] = ()
    source_id: str | None = None
    target_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "fields": list(self.fields)}


@dataclass
class Report:
    pipeline: str
    compared: int = 0
    items: list[DriftItem] = field(default_factory=list)  # the drift found
    repaired: int = 0
    left: list[DriftItem] = field(default_factory=list)  # the drift still there at the end (after a repair)

    def count(self, kind: str) -> int:
        return sum(1 for item in self.items if item.kind == kind)

    @property
    def drift(self) -> bool:
        """Whether source and target still disagree: the exit code and the alert go by this."""
        return bool(self.left)

    def as_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "compared": self.compared, "missing": self.count(MISSING),
                "different": self.count(DIFFERENT), "extra": self.count(EXTRA), "repaired": self.repaired,
                "items": [item.as_dict() for item in self.items]}


# ---- reading -----------------------------------------------------------------------------------
def _fetcher(pipeline: Pipeline) -> SupportsFetch:
    target = pipeline.target
    if not isinstance(target, SupportsFetch):
        raise ConfigError(f"reconcile needs a target that can fetch records by id; {pipeline.target_system!r} "
                          "cannot")
    return target


def _mapped_pages(pipeline: Pipeline) -> Iterator[tuple[list[str], list[tuple[Record, Mapped]]]]:
    """Per source page: every record id read, and the records the mapping and filter let through."""
    for page in pipeline.source.read_changes(pipeline.source_entity, None, page_size=pipeline.page_size):
        seen = [record.id for record in page.records]
        mapped: dict[str, tuple[Record, Mapped]] = {}
        for record in page.records:
            result = pipeline.plan.apply(record.data)
            if isinstance(result, Mapped):
                mapped[record.id] = (record, result)
            else:
                mapped.pop(record.id, None)  # skipped or rejected: a run would not deliver it either
        yield seen, list(mapped.values())


@dataclass
class _Pass:
    items: list[DriftItem] = field(default_factory=list)
    records: dict[str, Record] = field(default_factory=dict)  # source records to repair, by source id
    compared: int = 0
    stale_links: list[str] = field(default_factory=list)  # links to a target record that is gone


def _compare_page(pipeline: Pipeline, store: Store, mapped: Sequence[tuple[Record, Mapped]], out: _Pass) -> None:
    links = store.links_for(pipeline.name, [record.id for record, _ in mapped])
    targets: dict[str, str] = {}
    unlinked = [m.key for r, m in mapped if m.key and not (links.get(r.id) and links[r.id].target_id)]
    found = pipeline.target.lookup(pipeline.target_entity, unlinked) if unlinked else {}
    for record, result in mapped:
        link = links.get(record.id)
        target_id = link.target_id if link is not None and link.target_id else found.get(result.key or "")
        if target_id:
            targets[record.id] = target_id
    current = _fetcher(pipeline).fetch(pipeline.target_entity, sorted(set(targets.values())))
    for record, result in mapped:
        out.compared += 1
        key = result.key or record.id
        target_id = targets.get(record.id)
        have = current.get(target_id) if target_id else None
        if have is None and not pipeline.create_missing:
            continue  # an update-only pipeline never creates: a record the target lacks is not drift
        if have is None:
            out.items.append(DriftItem(key, MISSING, (), record.id, target_id))
            out.records[record.id] = record
            link = links.get(record.id)
            if link is not None and link.target_id:
                out.stale_links.append(record.id)
            continue
        fields = differing_fields(pipeline, result.data, have.data)
        if fields:
            out.items.append(DriftItem(key, DIFFERENT, tuple(fields), record.id, target_id))
            out.records[record.id] = record


def _extras(pipeline: Pipeline, store: Store, seen: set[str]) -> list[DriftItem]:
    """Links whose source record the full read did not return, and (when the source can say) is gone."""
    extras: list[DriftItem] = []
    after = ""
    while True:
        links = store.links_after(pipeline.name, after, max(1, pipeline.page_size))
        if not links:
            return extras
        after = links[-1].source_id
        unseen = [link for link in links if link.source_id not in seen and link.target_id]
        if unseen and isinstance(pipeline.source, SupportsFetch):
            # A handshake staging table reads only new rows: an unseen row may still be there.
            still = pipeline.source.fetch(pipeline.source_entity, [link.source_id for link in unseen])
            unseen = [link for link in unseen if link.source_id not in still]
        extras += [DriftItem(link.match_key or link.source_id, EXTRA, (), link.source_id, link.target_id)
                   for link in unseen]


def compare(pipeline: Pipeline, store: Store) -> _Pass:
    """One look at both sides (no writes)."""
    out = _Pass()
    seen: set[str] = set()
    for page_ids, mapped in _mapped_pages(pipeline):
        seen.update(page_ids)
        if mapped:
            _compare_page(pipeline, store, mapped, out)
    out.items += _extras(pipeline, store, seen)
    return out


# ---- the whole thing ---------------------------------------------------------------------------
def reconcile(pipeline: Pipeline, store: Store, *, repair: bool = False) -> Report:
    """Compare (and with `repair`, repair and compare again); publish what drift is left."""
    started = clock.monotonic()
    found = compare(pipeline, store)
    report = Report(pipeline.name, compared=found.compared, items=found.items, left=list(found.items))
    extras = [item.source_id for item in found.items if item.kind == EXTRA and item.source_id]
    if repair and (found.records or (extras and pipeline.on_delete != "ignore")):
        if found.stale_links:
            store.forget_targets(pipeline.name, found.stale_links)
        if found.records:
            info = deliver_records(pipeline, store, list(found.records.values()), trigger="reconcile",
                                   rewrite=True)
            report.repaired = info.counts.get("created", 0) + info.counts.get("updated", 0)
        try:
            report.repaired += apply_deletions(pipeline, store, extras, run_id="reconcile")
        except PipelineBusy as exc:  # a run kept the pipeline: the extras stay drift, still recorded below
            log.warning("reconcile left the deletions to a later pass", pipeline=pipeline.name, error=str(exc))
        report.left = compare(pipeline, store).items
    left = {kind: sum(1 for item in report.left if item.kind == kind) for kind in (MISSING, DIFFERENT, EXTRA)}
    finished_at = clock.time()
    # The store is the gauge's truth for /metrics (it outlives serve's restarts); the in-process gauge is
    # what a view without a store (a push without one) shows.
    store.record_drift(pipeline.name, left, datetime.fromtimestamp(finished_at, UTC))
    metrics.observe_drift(pipeline.name, left, finished_at=finished_at)
    log.info("reconcile finished", pipeline=pipeline.name, compared=report.compared, missing=report.count(MISSING),
             different=report.count(DIFFERENT), extra=report.count(EXTRA), repaired=report.repaired,
             left=len(report.left), seconds=round(clock.monotonic() - started, 3))
    return report
