"""How reconcile and `--full` tell a target record from what the mapping makes of the source.

Pure comparison (no I/O) shared by `erphub.reconcile` and the engine's `--full` judge
(`engine.judge`): a target that can fetch its records by id (`SupportsFetch`) is judged by the same
field comparison reconcile uses, so every such connector compares with the target's current record,
not with our links. `fetched_differing` does the one fetch per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from erphub.connectors.base import SupportsFetch
from erphub.core.records import owned_part

if TYPE_CHECKING:
    from erphub.engine.pipeline import Pipeline


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed
    return None


def same_value(want: Any, have: Any) -> bool:
    """Whether the target's value says what the mapping wants, across the systems' own spellings.

    Numbers compare by value (1130 == 1130.0 == "1130"? no: a string is not a number), dates and
    datetimes by the moment they name, None and "" alike (systems answer an empty field either way).
    A mapping value that is an object or a list is compared field by field on the fields it names, so
    a target's extra keys (line ids, a reference's name) are not drift.
    """
    if want in (None, "") and have in (None, ""):
        return True
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(k not in have or same_value(v, have[k]) for k, v in want.items())
    if isinstance(want, list | tuple):
        return (isinstance(have, list | tuple) and len(want) == len(have)
                and all(same_value(w, h) for w, h in zip(want, have, strict=True)))
    wn, hn = _number(want), _number(have)
    if wn is not None and hn is not None:
        return wn == hn
    if wn is not None and isinstance(have, str):
        try:
            return wn == Decimal(have)
        except InvalidOperation:
            return False
    wm, hm = _moment(want), _moment(have)
    if wm is not None and hm is not None:
        if (wm.tzinfo is None) != (hm.tzinfo is None):  # one side keeps no zone: compare wall times
            wm, hm = wm.replace(tzinfo=None), hm.replace(tzinfo=None)
        if wm == hm:
            return True
        # A date field keeps the day only (Kingdee FDate answers "2026-11-03T00:00:00" for a saved
        # "2026-11-03 07:00:00"): a target value at midnight agrees with any moment of that day.
        return hm.time() == time(0) and hm.tzinfo is None and wm.date() == hm.date()
    return bool(want == have)


def differing_fields(pipeline: Pipeline, mapped: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    """The owned fields whose target value differs from what the mapping makes of the source.

    A field the target does not return at all (write-only for this reader) cannot be judged and is
    left out; field names are matched case-blind for systems whose field keys ignore case.
    """
    owned = owned_part(mapped, pipeline.plan.owned_fields, keep=(pipeline.key_top(),))
    folded = {str(k).casefold(): v for k, v in target.items()}
    out: list[str] = []
    for name, want in owned.items():
        if name in target:
            have = target[name]
        elif name.casefold() in folded:
            have = folded[name.casefold()]
        else:
            continue
        if not same_value(want, have):
            out.append(name)
    return sorted(out)


Judged = tuple[str, str | None, Mapping[str, Any]]  # (source id, target id, mapped data)


def fetched_differing(pipeline: Pipeline, target: SupportsFetch, pairs: Sequence[Judged]) -> set[str]:
    """Of (source id, target id, mapped data), the source ids whose target record is gone or differs
    in an owned field, judged from one `fetch` of the target's current records."""
    ids = sorted({target_id for _, target_id, _ in pairs if target_id})
    current = target.fetch(pipeline.target_entity, ids) if ids else {}
    out: set[str] = set()
    for source_id, target_id, data in pairs:
        have = current.get(target_id) if target_id else None
        if have is None or differing_fields(pipeline, data, have.data):
            out.add(source_id)
    return out
