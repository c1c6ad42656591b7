"""Resolve a two-way conflict held for review: the chosen side's value, as it is now, goes to the other side.

The value written is read from the winning system at resolution time, not the one recorded when the
conflict was held: an edit made on that side while the conflict waited is newer, and writing the
recorded value would undo it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from erphub.connectors.base import SupportsFetch
from erphub.core.errors import ConfigError, RunFailed
from erphub.core.records import WriteRequest
from erphub.engine.lease import holding
from erphub.engine.pipeline import Pipeline
from erphub.engine.twoway import TwoWaySpec
from erphub.engine.twoway_batch import agreement
from erphub.runtime import Hub
from erphub.store import Conflict


def _current(connector: object, entity: str, record_id: str, field: str, recorded: Any) -> Any:
    if not isinstance(connector, SupportsFetch):
        return recorded  # a system that cannot read by id: the value seen when the conflict was held
    record = connector.fetch(entity, [record_id]).get(record_id)
    return recorded if record is None else record.data.get(field, recorded)


def _held(hub: Hub, conflict_id: int) -> Conflict:
    held = {c.id: c for c in hub.store.list_conflicts(status="held", limit=100_000)}
    conflict = held.get(conflict_id)
    if conflict is None:
        raise ConfigError(f"no held conflict with id {conflict_id}", field="conflict_id")
    return conflict


def resolve_conflict(hub: Hub, conflict_id: int, winner: str) -> Conflict:
    conflict = _held(hub, conflict_id)
    pipeline = hub.pipeline(conflict.pipeline)
    spec = pipeline.two_way
    if spec is None:
        raise ConfigError(f"pipeline {conflict.pipeline} is no longer two-way", file=hub.config.path)
    reverse = hub.pipeline(spec.reverse)
    # Both directions' leases: neither run reads or writes the field while the chosen value is written.
    with holding(hub.store, pipeline.lease(), reverse.lease()):
        # Held still? A run that finished while we waited may have settled it (both sides agreeing).
        return _settle(hub, _held(hub, conflict_id), pipeline, spec, reverse, winner)


def _settle(hub: Hub, conflict: Conflict, pipeline: Pipeline, spec: TwoWaySpec, reverse: Pipeline,
            winner: str) -> Conflict:
    source_field, target_field = spec.fields[conflict.field], conflict.field
    if winner == "source":
        value = _current(pipeline.source, pipeline.source_entity, conflict.source_id, source_field,
                         conflict.source_value)
        writer, entity, record_id, field, owner_source = (pipeline.target, pipeline.target_entity,
                                                          conflict.target_id, target_field, conflict.source_id)
    else:
        value = _current(pipeline.target, pipeline.target_entity, conflict.target_id, target_field,
                         conflict.target_value)
        writer, entity, record_id, field, owner_source = (reverse.target, reverse.target_entity,
                                                          conflict.source_id, source_field, conflict.target_id)
    result = writer.write(entity, [WriteRequest(source_id=owner_source, key=None, target_id=record_id,
                                                data={field: value}, idempotency_key=f"conflict:{conflict.id}",
                                                owned_fields=frozenset({field}))])[0]
    if not result.ok:
        reason = result.error.message if result.error else "no id returned"
        raise RunFailed(f"could not write the chosen value: {reason}", pipeline=conflict.pipeline, run_id="conflict")
    closed = hub.store.close_conflict(conflict.id, winner)
    assert closed is not None
    # Both sides now hold `value`: that is the agreement the next runs compare against (and it closes
    # the same conflict if the reverse direction held it too).
    hub.store.set_agreed([agreement(pipeline.name, spec, conflict.source_id, conflict.target_id, conflict.field,
                                    value)])
    # The value both sides now hold (newer than the recorded one if the winner was edited meanwhile).
    return replace(closed, source_value=value) if winner == "source" else replace(closed, target_value=value)
