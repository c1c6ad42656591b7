"""Two-way fields: decide per field whether a value is news, an echo, or a conflict.

A field both systems may change is compared three ways: the value this pipeline's source holds
(mapped: `wanted`), the value the target holds now, and the last value both sides agreed on — stored
per record and field (`erphub_agreed_values`), never inferred from either direction's last write, so
the outcome does not depend on which direction runs first:

- both sides hold one value: they agree (our own write read back is such an echo); nothing to write;
- only the source changed since the agreement: write it to the target;
- only the target changed: the reverse pipeline carries it; nothing to do here;
- both changed: a conflict, settled by the rule — the winner's value goes to the side that lacks it
  (to the target as a write, or back to this pipeline's source as a push), or, with `hold`, neither
  side is touched and a person decides (`erphub conflicts resolve`).

Pure rules only (no I/O); `erphub.engine.twoway_batch` applies them to one batch of a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

MISSING: Any = object()


class Action(Enum):
    AGREE = "agree"    # both sides hold the value: remember it as agreed
    WRITE = "write"    # this pipeline writes the source's value to the target
    PUSH = "push"      # the target's value wins: write it back to this pipeline's source
    LEAVE = "leave"    # only the target changed: the reverse pipeline carries it
    HOLD = "hold"      # both changed and the rule is `hold`: a person decides


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


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    value: Any                      # the value both sides hold afterwards (AGREE, WRITE, PUSH)
    conflict: FieldConflict | None = None


def _empty(value: Any) -> bool:
    return value is MISSING or value is None or value == ""


def decide(spec: TwoWaySpec, name: str, *, wanted: Any, now: Any, base: Any, source_newer: bool) -> Decision:
    """What to do with one two-way field; `base` is the agreed value (MISSING when they never agreed)."""
    if now is not MISSING and now == wanted:
        return Decision(Action.AGREE, wanted)
    if base is MISSING:
        # First meeting: an empty side takes the other's value; two different values are a conflict.
        source_changed, target_changed = not _empty(wanted), not _empty(now)
        if not target_changed:
            return Decision(Action.WRITE, wanted)
        if not source_changed:
            return Decision(Action.LEAVE, now)
    else:
        source_changed, target_changed = wanted != base, now is not MISSING and now != base
        if not target_changed:
            return Decision(Action.WRITE, wanted)
        if not source_changed:
            return Decision(Action.LEAVE, now)
    winner = _winner(spec, source_newer)
    conflict = FieldConflict(name, wanted, None if now is MISSING else now, None if base is MISSING else base, winner)
    if winner is None:
        return Decision(Action.HOLD, MISSING, conflict)
    if winner == "source":
        return Decision(Action.WRITE, wanted, conflict)
    return Decision(Action.PUSH, now, conflict)


def source_is_newer(source_at: datetime, target_at: datetime | None, *, first_of_pair: bool) -> bool:
    """newest_wins between two clocks: the systems' own change times of the field's records.

    On a tie the first pipeline of the pair (by name) has its source win, so both directions pick the
    same side and never push each other's value back and forth.
    """
    if target_at is None or source_at == target_at:
        return target_at is None or first_of_pair
    return source_at > target_at


def _winner(spec: TwoWaySpec, source_newer: bool) -> str | None:
    if spec.rule == "hold":
        return None
    if spec.rule == "owner_wins":
        return spec.owner
    return "source" if source_newer else "target"
