"""The two-way part of one batch: find the records the reverse pipeline linked, see what the target has
now and what both sides last agreed on, and settle each two-way field by `erphub.engine.twoway.decide`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from erphub.connectors.base import SupportsFetch
from erphub.core.outcomes import ErrorClass, Stage
from erphub.core.records import Record, WriteRequest
from erphub.engine.items import Classified
from erphub.engine.pipeline import Pipeline
from erphub.engine.twoway import MISSING, Action, TwoWaySpec, decide, source_is_newer
from erphub.monitoring import metrics
from erphub.store import AgreedValue, BatchCommit, Conflict, LinkUpdate, NewDeadLetter, Store


def paired_targets(pipeline: Pipeline, store: Store, items: Sequence[Classified],
                   known: Mapping[str, str | None]) -> dict[str, str]:
    """Records the reverse pipeline created on our source side are linked through its links."""
    assert pipeline.two_way is not None
    unknown = [item.record.id for item in items if known.get(item.record.id) is None]
    if not unknown:
        return {}
    reverse = store.reverse_link_targets(pipeline.two_way.reverse, unknown)
    return {source_id: link.source_id for source_id, link in reverse.items()}


def pair_of(name: str, spec: TwoWaySpec) -> tuple[str, bool]:
    """The pair's store name and whether `name` is its first pipeline (whose ids and fields key the rows)."""
    first = name < spec.reverse
    return (f"{name}|{spec.reverse}" if first else f"{spec.reverse}|{name}"), first


def agreed_key(name: str, spec: TwoWaySpec, source_id: str, target_id: str, target_field: str) -> tuple[str, str, str]:
    """(pair, record id, field) of one two-way field, the same from both directions."""
    pair, first = pair_of(name, spec)
    return (pair, source_id, target_field) if first else (pair, target_id, spec.fields[target_field])


def agreement(name: str, spec: TwoWaySpec, source_id: str, target_id: str, target_field: str,
              value: Any) -> AgreedValue:
    """Both sides hold `value`: the agreement, ending any conflict held on it from either direction."""
    pair, record_id, field_name = agreed_key(name, spec, source_id, target_id, target_field)
    return AgreedValue(pair, record_id, field_name, value,
                       settles=((name, source_id, target_field), (spec.reverse, target_id, spec.fields[target_field])))


def agreed_after_write(pipeline: Pipeline, source_id: str, target_id: str | None,
                       data: Mapping[str, Any]) -> list[AgreedValue]:
    """A write the target accepted: its two-way fields now hold what the source held when read."""
    spec = pipeline.two_way
    if spec is None or not target_id:
        return []
    return [agreement(pipeline.name, spec, source_id, target_id, name, data[name])
            for name in spec.fields if name in data]


@dataclass
class TwoWayBatch:
    """One batch's view of the other side: what the target holds now, the agreed values, and the
    conflicts already waiting for a person (so each is recorded once)."""

    pipeline: Pipeline
    spec: TwoWaySpec
    current: Mapping[str, Record] = field(default_factory=dict)
    agreed: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    held: set[tuple[str, str, str]] = field(default_factory=set)
    pushes: list[tuple[Record, WriteRequest]] = field(default_factory=list)  # winners for our source side
    # A reconcile repair settles each field from this direction alone: a change only the target has
    # is pushed to our source too, instead of waiting for the reverse pipeline's next run.
    repair: bool = False

    @classmethod
    def look(cls, pipeline: Pipeline, store: Store, targets: Mapping[str, str | None], *,
             repair: bool = False) -> TwoWayBatch:
        spec = pipeline.two_way
        assert spec is not None
        pairs = [(s, t) for s, t in targets.items() if t is not None]
        if not pairs:
            return cls(pipeline, spec, repair=repair)
        target = pipeline.target
        ids = [t for _, t in pairs]
        current = target.fetch(pipeline.target_entity, ids) if isinstance(target, SupportsFetch) else {}
        pair, first = pair_of(pipeline.name, spec)
        agreed = store.agreed_values(pair, [s if first else t for s, t in pairs])
        held = store.held_conflict_keys([pipeline.name, spec.reverse])
        return cls(pipeline, spec, current, agreed, held, repair=repair)

    def _held(self, source_id: str, target_id: str, name: str) -> bool:
        return ((self.pipeline.name, source_id, name) in self.held
                or (self.spec.reverse, target_id, self.spec.fields[name]) in self.held)

    def to_write(self, item: Classified, target_id: str, data: dict[str, Any],
                 batch: BatchCommit) -> dict[str, Any] | None:
        """Settle the two-way fields of one record. None when nothing is left to write: the link is
        refreshed and the record resolved in `batch`, and the caller counts it unchanged."""
        spec, name, source_id = self.spec, self.pipeline.name, item.record.id
        now = self.current.get(target_id)
        _, first = pair_of(name, spec)
        newer = source_is_newer(item.record.updated_at, now.updated_at if now else None, first_of_pair=first,
                                skew_s=spec.skew_s)
        payload = dict(data)
        push: dict[str, Any] = {}
        for field_name in spec.fields:
            if field_name not in payload:
                continue
            _, record_id, agreed_field = agreed_key(name, spec, source_id, target_id, field_name)
            base = self.agreed.get((record_id, agreed_field), MISSING)
            held = self._held(source_id, target_id, field_name)
            decision = decide(spec, field_name, wanted=payload[field_name],
                              now=MISSING if now is None else now.data.get(field_name, MISSING),
                              base=base, source_newer=newer, held=held)
            if decision.action is not Action.WRITE:
                del payload[field_name]
            if decision.action is Action.AGREE and (base is MISSING or base != decision.value or held):
                batch.agreed.append(agreement(name, spec, source_id, target_id, field_name, decision.value))
            elif decision.action is Action.PUSH or (decision.action is Action.LEAVE and self.repair):
                push[spec.fields[field_name]] = decision.value
            conflict = decision.conflict
            if conflict is not None and not (conflict.winner is None and held):
                if conflict.winner is None:
                    self.held.add((name, source_id, field_name))
                batch.conflicts.append(Conflict(name, source_id, target_id, field_name, conflict.source_value,
                                                conflict.target_value, conflict.base_value, spec.rule,
                                                conflict.winner))
                metrics.count_conflict(name, "held" if conflict.winner is None else spec.rule)
        if push:
            self.pushes.append((item.record, WriteRequest(
                source_id=target_id, key=None, target_id=source_id, data=push,
                idempotency_key=f"{name}:push:{source_id}", owned_fields=frozenset(push))))
        key_top = self.pipeline.key_top()
        ours = item.link
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

    def push_winners(self, batch: BatchCommit) -> int:
        """Write the target's winning values back to our source; returns how many were refused."""
        if not self.pushes:
            return 0
        p, spec = self.pipeline, self.spec
        requests = [request for _, request in self.pushes]
        results = p.source.write(p.source_entity, requests)
        refused = 0
        for (record, request), result in zip(self.pushes, results, strict=True):
            if result.ok:
                for reverse_field, value in request.data.items():
                    ours = next(f for f, r in spec.fields.items() if r == reverse_field)
                    batch.agreed.append(agreement(p.name, spec, record.id, request.source_id, ours, value))
                continue
            reason = result.error.message if result.error else "no id returned"
            batch.dead_letters.append(NewDeadLetter(
                source_id=record.id, source_payload=record.data, mapped_payload=request.data,
                stage=Stage.WRITE_BACK, error_class=ErrorClass.SOURCE_REJECTED,
                error_code=result.error.code if result.error else "no_target_id",
                message=p.redact(reason), field=next(iter(request.data)), source_updated_at=record.updated_at))
            refused += 1
        self.pushes.clear()
        return refused
