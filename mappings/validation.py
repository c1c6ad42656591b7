"""Validation of a produced value: required, type, regex, length, range, one_of.

Each rule compiles to a check `value -> None` that raises Invalid(code, reason). Rules other than
`required` let null through: "optional but, when given, 18 characters" is the common case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from erphub.core.errors import Invalid, TransformError
from erphub.mappings.conditions import is_present, values_equal
from erphub.mappings.numbers import kind, parse_text, show
from erphub.mappings.spec import LengthSpec, ValidateSpec
from erphub.mappings.transforms import ArgError

Check = Callable[[Any], None]


def _shown(value: Any) -> str:
    return show(value)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float | Decimal) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}


def _as_number(v: Any) -> Decimal | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, Decimal):
        return v if v.is_finite() else None
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v)) if v == v and abs(v) != float("inf") else None
    if isinstance(v, str):
        try:
            return parse_text(v)
        except TransformError:
            return None
    return None


def compile_checks(spec: ValidateSpec | None, *, required: bool = False) -> list[tuple[str, Check]]:
    """[(rule name, check)], in the order they run. `required` forces the required rule (match keys)."""
    checks: list[tuple[str, Check]] = []
    if required or (spec is not None and spec.required):
        def check_required(v: Any) -> None:
            if not is_present(v):
                raise Invalid("required", "required value is missing")
        checks.append(("required", check_required))
    if spec is None:
        return checks
    if spec.type is not None:
        test, name = _TYPES[spec.type], spec.type

        def check_type(v: Any) -> None:
            if v is not None and not test(v):
                raise Invalid("type", f"expected {name}, got {kind(v)} {_shown(v)}")
        checks.append(("type", check_type))
    if spec.regex is not None:
        try:
            rx = re.compile(spec.regex)
        except re.error as exc:
            raise ArgError(f"invalid regular expression {spec.regex!r}: {exc}", "regex") from None
        pattern = spec.regex

        def check_regex(v: Any) -> None:
            if v is None:
                return
            text = v if isinstance(v, str) else (str(v) if isinstance(v, int | Decimal) else None)
            if text is None or rx.fullmatch(text) is None:
                raise Invalid("regex", f"{_shown(v)} does not match {pattern}")
        checks.append(("regex", check_regex))
    if spec.length is not None:
        length = spec.length
        lo, hi = (length, length) if isinstance(length, int) else (length.min, length.max)
        if isinstance(length, LengthSpec) and lo is not None and hi is not None and lo > hi:
            raise ArgError(f"length min {lo} is greater than max {hi}", "length")

        def check_length(v: Any) -> None:
            if v is None:
                return
            if not isinstance(v, str | list | dict):
                raise Invalid("type", f"length applies to text or lists, got {kind(v)}")
            n = len(v)
            if (lo is not None and n < lo) or (hi is not None and n > hi):
                upper = hi if hi is not None else "any"
                want = f"exactly {lo}" if lo == hi else f"between {lo or 0} and {upper}"
                raise Invalid("length", f"length {n} is not {want}")
        checks.append(("length", check_length))
    if spec.range is not None:
        r = spec.range
        bounds = {k: (Decimal(repr(x)) if isinstance(x, float) else Decimal(x))
                  for k, x in (("min", r.min), ("max", r.max), ("gt", r.gt), ("lt", r.lt)) if x is not None}
        if not bounds:
            raise ArgError("range needs at least one of min, max, gt, lt", "range")

        least, most, above, below = (bounds.get(k) for k in ("min", "max", "gt", "lt"))
        limits = ", ".join(f"{k} {show(b)}" for k, b in bounds.items())

        def check_range(v: Any) -> None:
            if v is None:
                return
            n = v if v.__class__ is Decimal and v.is_finite() else _as_number(v)
            if n is None:
                raise Invalid("type", f"range applies to numbers, got {_shown(v)}")
            if (least is not None and n < least) or (most is not None and n > most) \
                    or (above is not None and n <= above) or (below is not None and n >= below):
                raise Invalid("range", f"{show(n)} is out of range ({limits})")
        checks.append(("range", check_range))
    if spec.one_of is not None:
        options = tuple(spec.one_of)

        def check_one_of(v: Any) -> None:
            if v is not None and not any(values_equal(v, o) for o in options):
                raise Invalid("one_of", f"{_shown(v)} is not one of {', '.join(show(o) for o in options)}")
        checks.append(("one_of", check_one_of))
    return checks
