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

`newest_wins` compares the two systems' own change times, stamped by two clocks. Each system's clock
may run behind ours by up to its overlap window (`read_lag_s` / `lag_seconds`: the same allowance the
incremental read re-reads for), so two edits whose stamps are closer than the larger of the pair's two
windows (`TwoWaySpec.skew_s`) cannot be ordered: they are concurrent, and the conflict is held for a
person exactly as under `hold` — a side whose clock is behind by up to the allowance never loses its
newer edit to a tie-break. Once held it stays held (the hub's own writes of other fields move a
record's change time, which says nothing about who edited the phone last) until a person resolves it
or both sides come to hold one value.

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
    # newest_wins: change times closer than this are concurrent (the larger overlap window of the pair)
    skew_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    value: Any                      # the value both sides hold afterwards (AGREE, WRITE, PUSH)
    conflict: FieldConflict | None = None


def _empty(value: Any) -> bool:
    return value is MISSING or value is None or value == ""


def decide(spec: TwoWaySpec, name: str, *, wanted: Any, now: Any, base: Any, source_newer: bool | None,
           held: bool = False) -> Decision:
    """What to do with one two-way field; `base` is the agreed value (MISSING when they never agreed).

    `source_newer` is None when the change times are concurrent (within the skew allowance); `held`
    says a conflict on this field already waits for a person."""
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
    winner = _winner(spec, None if held and spec.rule == "newest_wins" else source_newer)
    conflict = FieldConflict(name, wanted, None if now is MISSING else now, None if base is MISSING else base, winner)
    if winner is None:
        return Decision(Action.HOLD, MISSING, conflict)
    if winner == "source":
        return Decision(Action.WRITE, wanted, conflict)
    return Decision(Action.PUSH, now, conflict)


def source_is_newer(source_at: datetime, target_at: datetime | None, *, first_of_pair: bool,
                    skew_s: float = 0.0) -> bool | None:
    """newest_wins between two clocks: the systems' own change times of the field's records.

    None (concurrent: neither is known to be newer) when the times are within `skew_s` of each other
    and an allowance is set. With no allowance, on a tie the first pipeline of the pair (by name) has
    its source win, so both directions pick the same side and never push each other's value back and
    forth. The test is symmetric, so both directions of a pair reach the same verdict.
    """
    if target_at is None:
        return True
    if skew_s > 0 and abs((source_at - target_at).total_seconds()) <= skew_s:
        return None
    if source_at == target_at:
        return first_of_pair
    return source_at > target_at


def _winner(spec: TwoWaySpec, source_newer: bool | None) -> str | None:
    if spec.rule == "hold":
        return None
    if spec.rule == "owner_wins":
        return spec.owner
    if source_newer is None:
        return None  # concurrent edits: a person decides
    return "source" if source_newer else "target"
