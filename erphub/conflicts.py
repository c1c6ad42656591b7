"""Resolve a two-way conflict held for review: write the chosen value to the side that lacks it."""

from __future__ import annotations

from erphub.core.errors import ConfigError, RunFailed
from erphub.core.records import WriteRequest
from erphub.runtime import Hub
from erphub.store import Conflict


def resolve_conflict(hub: Hub, conflict_id: int, winner: str) -> Conflict:
    held = {c.id: c for c in hub.store.list_conflicts(status="held", limit=100_000)}
    conflict = held.get(conflict_id)
    if conflict is None:
        raise ConfigError(f"no held conflict with id {conflict_id}", file=hub.config.path)
    pipeline = hub.pipeline(conflict.pipeline)
    spec = pipeline.two_way
    if spec is None:
        raise ConfigError(f"pipeline {conflict.pipeline} is no longer two-way", file=hub.config.path)
    if winner == "source":
        writer, entity, record_id, field, value = (pipeline.target, pipeline.target_entity, conflict.target_id,
                                                   conflict.field, conflict.source_value)
        owner_pipeline, owner_source = pipeline.name, conflict.source_id
    else:
        reverse = hub.pipeline(spec.reverse)
        writer, entity, record_id, field, value = (reverse.target, reverse.target_entity, conflict.source_id,
                                                   spec.fields[conflict.field], conflict.target_value)
        owner_pipeline, owner_source = reverse.name, conflict.target_id
    result = writer.write(entity, [WriteRequest(source_id=owner_source, key=None, target_id=record_id,
                                                data={field: value}, idempotency_key=f"conflict:{conflict_id}")])[0]
    if not result.ok:
        reason = result.error.message if result.error else "no id returned"
        raise RunFailed(f"could not write the chosen value: {reason}", pipeline=conflict.pipeline, run_id="conflict")
    hub.store.set_written_field(owner_pipeline, owner_source, field, value)
    hub.store.close_mirror_conflicts(spec.reverse, conflict.target_id, spec.fields[conflict.field],
                                     "target" if winner == "source" else "source")
    closed = hub.store.close_conflict(conflict_id, winner)
    assert closed is not None
    return closed
