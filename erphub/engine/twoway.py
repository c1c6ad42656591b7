"""Two-way fields: decide per field whether a write carries news, is an echo, or is a conflict.

A field both systems may change is compared three ways: the value this pipeline wants to write
(from its source), the value the target has now, and the last value both sides agreed on (the
newest of what either direction last wrote). Only a change made on the source side since that
agreement is written; our own writes read back equal the agreement and so are echoes, never
synced again. When both sides changed the field, the configured rule decides and the conflict
is recorded with both values.

The pure rules come first (`agreed_values`, `reconcile`); `paired_targets` and `TwoWayBatch` apply
them to one batch of a run, with what the store and the target know.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from erphub.connectors.base import SupportsFetch
from erphub.core.records import Record
from erphub.engine.items import Classified
from erphub.monitoring import metrics
from erphub.store import BatchCommit, Conflict, Link, LinkUpdate, Store

if TYPE_CHECKING:  # the Pipeline holds a TwoWaySpec, so it is imported only for the type checker
    from erphub.engine.pipeline import Pipeline

MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class FieldConflict:
    field: str
    source_value: Any
    target_value: Any
    base_value: Any
    winner: str | None  # "source", "target", or None when held for review


@dataclass(frozen=True, slots=True)
class TwoWaySpec:
    reverse: str
    fields: Mapping[str, str]  # this pipeline's target field -> the reverse pipeline's target field
    rule: str                  # owner_wins | newest_wins | hold
    owner: str | None          # "source" or "target": the side whose system owns the field under owner_wins


def agreed_values(spec: TwoWaySpec, *, ours: Mapping[str, Any] | None, ours_at: datetime | None,
                  theirs: Mapping[str, Any] | None, theirs_at: datetime | None) -> dict[str, Any]:
    """The last agreed value of each two-way field (target-side names): the newer of the two writes."""
    agreed: dict[str, Any] = {}
    ours_newer = theirs_at is None or (ours_at is not None and ours_at >= theirs_at)
    for target_field, reverse_field in spec.fields.items():
        mine = (ours or {}).get(target_field, MISSING)
        other = (theirs or {}).get(reverse_field, MISSING)
        if mine is MISSING:
            agreed[target_field] = other
        elif other is MISSING:
            agreed[target_field] = mine
        else:
            agreed[target_field] = mine if ours_newer else other
    return agreed


def reconcile(spec: TwoWaySpec, desired: Mapping[str, Any], *, current: Mapping[str, Any] | None,
              agreed: Mapping[str, Any], source_is_newer: bool) -> tuple[dict[str, Any], list[FieldConflict]]:
    """The payload to write (two-way fields kept only when they carry a source-side change) and the conflicts."""
    payload = dict(desired)
    conflicts: list[FieldConflict] = []
    for name in spec.fields:
        if name not in payload:
            continue
        wanted = payload[name]
        base = agreed.get(name, MISSING)
        now = MISSING if current is None else current.get(name, MISSING)
        if now is not MISSING and now == wanted:
            del payload[name]          # already there: an echo of our own write, or both agree
            continue
        source_changed = base is MISSING or wanted != base
        target_changed = now is not MISSING and base is not MISSING and now != base
        if base is MISSING and now is not MISSING and now not in (None, ""):
            target_changed = True      # first meeting of two different values: a conflict, not a guess
        if not source_changed:
            del payload[name]          # nothing new on the source side; the target's value may be newer
            continue
        if not target_changed:
            continue                   # only the source changed: write it
        winner = _winner(spec, source_is_newer)
        conflicts.append(FieldConflict(name, wanted, None if now is MISSING else now,
                                       None if base is MISSING else base, winner))
        if winner != "source":
            del payload[name]
    return payload, conflicts


def _winner(spec: TwoWaySpec, source_is_newer: bool) -> str | None:
    if spec.rule == "hold":
        return None
    if spec.rule == "owner_wins":
        return spec.owner
    return "source" if source_is_newer else "target"


# -- the two-way part of one batch ---------------------------------------------------------------

def paired_targets(pipeline: Pipeline, store: Store, items: Sequence[Classified],
                   known: Mapping[str, str | None]) -> dict[str, str]:
    """Records the reverse pipeline created on our source side are linked through its links."""
    assert pipeline.two_way is not None
    unknown = [item.record.id for item in items if known.get(item.record.id) is None]
    if not unknown:
        return {}
    reverse = store.reverse_link_targets(pipeline.two_way.reverse, unknown)
    return {source_id: link.source_id for source_id, link in reverse.items()}


@dataclass
class TwoWayBatch:
    """One batch's view of the other side: what the target holds now, the reverse pipeline's links to
    those records, and the conflicts already waiting for a person (so each is recorded once)."""

    pipeline: Pipeline
    spec: TwoWaySpec
    current: Mapping[str, Record] = field(default_factory=dict)
    reverse_links: Mapping[str, Link] = field(default_factory=dict)
    held: set[tuple[str, str, str]] = field(default_factory=set)

    @classmethod
    def look(cls, pipeline: Pipeline, store: Store, targets: Mapping[str, str | None]) -> TwoWayBatch:
        spec = pipeline.two_way
        assert spec is not None
        ids = [t for t in targets.values() if t is not None]
        if not ids:
            return cls(pipeline, spec)
        target = pipeline.target
        current = target.fetch(pipeline.target_entity, ids) if isinstance(target, SupportsFetch) else {}
        held = store.held_conflict_keys([pipeline.name, spec.reverse])
        return cls(pipeline, spec, current, store.links_for(spec.reverse, ids), held)

    def to_write(self, item: Classified, target_id: str, data: dict[str, Any],
                 batch: BatchCommit) -> dict[str, Any] | None:
        """Drop echoes and settle conflicts on two-way fields. None when nothing is left to write: the
        link is refreshed and the record resolved in `batch`, and the caller counts it unchanged."""
        spec, name = self.spec, self.pipeline.name
        ours, theirs = item.link, self.reverse_links.get(target_id)
        agreed = agreed_values(spec, ours=ours.written_payload if ours else None,
                               ours_at=ours.updated_at if ours else None,
                               theirs=theirs.written_payload if theirs else None,
                               theirs_at=theirs.updated_at if theirs else None)
        now = self.current.get(target_id)
        payload, conflicts = reconcile(spec, data, current=now.data if now else None, agreed=agreed,
                                       source_is_newer=now is None or item.record.updated_at >= now.updated_at)
        for conflict in conflicts:
            mirror = (spec.reverse, target_id, spec.fields[conflict.field])
            if conflict.winner is None and ((name, item.record.id, conflict.field) in self.held
                                            or mirror in self.held):
                continue  # already waiting for a person; record it once
            self.held.add((name, item.record.id, conflict.field))
            batch.conflicts.append(Conflict(name, item.record.id, target_id, conflict.field,
                                            conflict.source_value, conflict.target_value, conflict.base_value,
                                            spec.rule, conflict.winner))
            metrics.count_conflict(name, "held" if conflict.winner is None else spec.rule)
        key_top = self.pipeline.key_top()
        last_written = ours.written_payload or {} if ours else {}
        # Only what changed since our last write travels: an unchanged owned field is not news either.
        payload = {field_name: value for field_name, value in payload.items()
                   if field_name == key_top or field_name in spec.fields
                   or last_written.get(field_name, MISSING) != value}
        if any(field_name != key_top for field_name in payload):
            return payload
        # Nothing carries news: our own write read back, or values both sides already share.
        written = dict(ours.written_payload or {}) if ours else {}
        batch.links.append(LinkUpdate(item.record.id, target_id, item.mapped.key, item.digest, written,
                                      source_updated_at=item.record.updated_at))
        batch.resolved_source_ids.append(item.record.id)
        return None
