"""Two-way fields: decide per field whether a write carries news, is an echo, or is a conflict.

A field both systems may change is compared three ways: the value this pipeline wants to write
(from its source), the value the target has now, and the last value both sides agreed on (the
newest of what either direction last wrote). Only a change made on the source side since that
agreement is written; our own writes read back equal the agreement and so are echoes, never
synced again. When both sides changed the field, the configured rule decides and the conflict
is recorded with both values.

Pure rules only (no I/O); `erphub.engine.twoway_batch` applies them to one batch of a run, with what
the store and the target know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
