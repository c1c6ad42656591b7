"""A compiled mapping and the three things applying it can say.

`Plan.apply(record)` runs closures the compiler built: no parsing, no name lookups, no YAML, no
I/O, no global state. It never raises: a record is Mapped, Rejected (with the target field path,
the reason and a code, on its way to the dead letters) or Skipped (a filter said not to move it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from erphub.core.errors import Reject, TransformError
from erphub.mappings.conditions import Unevaluable


@dataclass(frozen=True, slots=True)
class Mapped:
    data: dict[str, Any]
    key: str | None  # value of the mapping's match key field, None when the mapping has no key


@dataclass(frozen=True, slots=True)
class Rejected:
    field: str  # target field path, e.g. "FSaleOrderEntry[2].FMaterialId.FNumber"; "" for the whole record
    reason: str
    code: str  # required, type, regex, length, range, one_of, lookup_missing, unknown_value, transform, input


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


Outcome = Mapped | Rejected | Skipped


# A step writes one target field (or a batch of plain copies, or a child collection) into `out`.
Step = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], None]
Filter = tuple[Callable[[Any, Any], bool], Callable[[Any], str]]


def key_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | int | float):
        return str(value)
    return str(value)


class Plan:
    """A mapping compiled once, applied to many records."""

    __slots__ = (
        "_filters",
        "_key_parts",
        "_steps",
        "description",
        "key_field",
        "owned_fields",
        "produced_fields",
        "source_entity",
        "source_file",
        "target_entity",
    )

    def __init__(
        self,
        *,
        source_entity: str,
        target_entity: str,
        key_field: str | None,
        owned_fields: frozenset[str] | None,
        produced_fields: frozenset[str],
        source_file: str,
        description: str,
        filters: Sequence[Filter],
        steps: Sequence[Step],
    ) -> None:
        self.source_entity = source_entity
        self.target_entity = target_entity
        self.key_field = key_field
        self.owned_fields = owned_fields
        self.produced_fields = produced_fields  # top-level target fields this mapping can write
        self.source_file = source_file
        self.description = description
        self._filters = tuple(filters)
        self._steps = tuple(steps)
        self._key_parts = tuple(key_field.split(".")) if key_field else ()

    def __repr__(self) -> str:
        return f"<Plan {self.source_entity} -> {self.target_entity} from {self.source_file}>"

    def apply(self, record: Mapping[str, Any]) -> Outcome:
        try:
            if type(record) is not dict:
                if not isinstance(record, Mapping):
                    return Rejected("", f"expected a record object, got {type(record).__name__}", "input")
                record = dict(record)
            for test, why in self._filters:
                if not test(record, record):
                    return Skipped(why(record))
            out: dict[str, Any] = {}
            for step in self._steps:
                step(record, record, out)
            parts = self._key_parts
            if not parts:
                return Mapped(out, None)
            if len(parts) == 1:
                value: Any = out.get(parts[0])
            else:
                value = out
                for part in parts:
                    value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                return Mapped(out, None)
            return Mapped(out, value if value.__class__ is str else key_text(value))
        except Reject as rej:
            return Rejected(rej.field, rej.reason, rej.code)
        except Unevaluable as exc:  # a record filter that cannot say yes or no: never a silent skip
            return Rejected(exc.field or "filter", str(exc), exc.code)
        except TransformError as exc:  # an expression in a record filter that cannot be evaluated
            return Rejected("filter", str(exc), "condition")
        except RecursionError:
            return Rejected("", "the record is nested too deeply to map", "input")
        except Exception as exc:  # a defect must cost one record, never the run
            return Rejected("", f"internal error while mapping (please report it): {exc}", "internal")
