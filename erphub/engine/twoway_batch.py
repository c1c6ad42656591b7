"""The two-way part of one batch: find the records the reverse pipeline linked, see what the target has
now, and settle each two-way field by the rules of `erphub.engine.twoway`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from erphub.connectors.base import SupportsFetch
from erphub.core.records import Record
from erphub.engine.items import Classified
from erphub.engine.pipeline import Pipeline
from erphub.engine.twoway import MISSING, TwoWaySpec, agreed_values, reconcile
from erphub.monitoring import metrics
from erphub.store import BatchCommit, Conflict, Link, LinkUpdate, Store


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
