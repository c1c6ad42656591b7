"""Numbers written as text, read exactly or refused: the one grammar every transform uses.

    decimal: point (default)      1234.56   1,234.56   -1,234   .5   1e3   １２.５ (full-width digits)
    decimal: comma (declared)     1234,56   1.234,56   -1.234   ,5

A grouping separator is accepted only between groups of exactly three digits after a first group
of one to three (`1,234,567.8`); anything else that looks like a number but does not follow the
grammar (`12,50` without `decimal: comma`, `1,2,3`, `12，50` with a full-width comma, `1.234.5`)
is refused with the value named, never read as some other magnitude. NaN and infinities are
refused everywhere. Decimals are written as plain digits, never in exponent notation, and never
as a negative zero.
"""

from __future__ import annotations

import re
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any, Literal

from erphub.core.errors import TransformError
from erphub.mappings import textnorm

DecimalMark = Literal["point", "comma"]

# Sums and products are exact or an error, never silently rounded to the default 28 digits.
EXACT = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


def exact(op: Any, a: Decimal, b: Decimal) -> Decimal:
    try:
        return no_negative_zero(op(a, b))
    except (Inexact, InvalidOperation, Overflow):
        raise TransformError(f"the exact result of {show(a)} and {show(b)} has more than {EXACT.prec} digits") from None

_PLAIN = {
    "point": re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?"),
    "comma": re.compile(r"[+-]?(\d+(,\d*)?|,\d+)"),
}
_GROUPED = {
    "point": re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?"),
    "comma": re.compile(r"[+-]?\d{1,3}(\.\d{3})+(,\d+)?"),
}
_SEPARATOR = {"point": ",", "comma": "."}
_INF, _NINF = float("inf"), float("-inf")
_FULLWIDTH_SEPARATORS = ("，", "、", "．")  # U+FF0C, U+3001, U+FF0E: typos we do not guess about


def show(value: Any, limit: int = 60) -> str:
    """A value as the mapping author would write it: text quoted, numbers plain, no Python names."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value) if value.is_finite() else str(value)
    if isinstance(value, float):
        return repr(value) if value - value == 0 else ("NaN" if value != value else str(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return "'" + text.encode("utf-8", "backslashreplace").decode("utf-8").replace("'", "\\'") + "'"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def kind(value: Any) -> str:
    """What a value is, in words: 'text', 'a number', 'a boolean', 'a list', 'an object', 'null'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a date" if hasattr(value, "isoformat") else "an unknown kind of value"


def plain(value: Decimal) -> str:
    """Digits only: `Decimal('1E-7')` -> '0.0000001', `Decimal('-0.00')` -> '0.00'."""
    if value.is_zero() and value.is_signed():
        value = value.copy_abs()
    return format(value, "f")


def no_negative_zero(value: Decimal) -> Decimal:
    return value.copy_abs() if value.is_zero() and value.is_signed() else value


def parse_text(text: str, mark: DecimalMark = "point") -> Decimal:
    """The Decimal a number text says, or TransformError naming the text."""
    original = text
    if not text.isascii():
        if any(sep in text for sep in _FULLWIDTH_SEPARATORS):
            raise TransformError(f"not a number: {show(original)} has a full-width separator; "
                                 f"write the amount with ASCII digits and '.'")
        text = textnorm.halfwidth(text)
    text = text.strip()
    if len(text) > 100:
        raise TransformError(f"not a number: {show(original)} is too long")
    if _PLAIN[mark].fullmatch(text):
        return _decimal(text.replace(",", ".") if mark == "comma" else text, original)
    if _GROUPED[mark].fullmatch(text):
        body = text.replace(_SEPARATOR[mark], "")
        return _decimal(body.replace(",", ".") if mark == "comma" else body, original)
    raise TransformError(_why_not(text, original, mark))


def _decimal(text: str, original: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the grammar only lets numbers through
        raise TransformError(f"not a number: {show(original)}") from None


def _why_not(text: str, original: str, mark: DecimalMark) -> str:
    if re.fullmatch(r"[+-]?[\d.,]*\d[\d.,]*", text):
        if mark == "point" and "," in text:
            return (f"ambiguous number {show(original)}: ',' must group three digits (1,234.56); "
                    f"if it is a decimal comma, declare `decimal: comma` in the mapping")
        if mark == "comma" and "." in text:
            return (f"ambiguous number {show(original)}: with `decimal: comma`, '.' must group three "
                    f"digits (1.234,56)")
        return f"ambiguous number {show(original)}: separators do not group the digits in threes"
    return f"not a number: {show(original)}"


def to_decimal(value: Any, mark: DecimalMark = "point") -> Decimal:
    """Any value a source may send as a number -> exact Decimal, or TransformError."""
    cls = value.__class__  # exact-type fast paths first: this runs for every amount of every line
    if cls is float:
        if value - value != 0:
            raise TransformError(f"not a finite number: {show(value)}")
        return Decimal(repr(value))  # repr is the shortest text that round-trips: 0.1 -> Decimal("0.1")
    if cls is int:
        return Decimal(value)
    if cls is Decimal and value.is_finite():
        return value
    if cls is str:
        if mark == "point" and len(value) <= 100 and _PLAIN["point"].fullmatch(value):
            return Decimal(value)
        return parse_text(value, mark)
    if isinstance(value, bool):
        raise TransformError("expected a number, got a boolean")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TransformError(f"not a finite number: {show(value)}")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return to_decimal(float(value), mark)
    if isinstance(value, str):
        return parse_text(str(value), mark)
    raise TransformError(f"expected a number, got {show(value)}")


def finite_problem(value: Any, depth: int = 0) -> str | None:
    """Why a value cannot be written (NaN or an infinity somewhere inside it), or None."""
    cls = value.__class__
    if cls is float:
        return None if value - value == 0 else f"{show(value)} is not a finite number"
    if cls is Decimal:
        return None if value.is_finite() else f"{show(value)} is not a finite number"
    if depth > 200:
        return "the value is nested too deeply"
    if cls is dict:
        for item in value.values():
            problem = finite_problem(item, depth + 1)
            if problem:
                return problem
    elif cls is list:
        for item in value:
            problem = finite_problem(item, depth + 1)
            if problem:
                return problem
    return None


_NUMERIC_SPEC = re.compile(r"(?P<head>.*?)(?:\.(?P<prec>\d+))?(?P<type>[eEfFgGn%dxXobc]?)")


def format_value(value: Any, spec: str, mark: DecimalMark) -> str:
    """A template placeholder `{amount:.2f}`: numbers through Decimal, rounded half up (四舍五入) like
    `round`, never '-0.00' and never an exponent unless the spec asks for one."""
    numeric = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if isinstance(value, str):
        m = _NUMERIC_SPEC.fullmatch(spec)
        numeric = bool(m and m.group("type") and m.group("type") not in "sc")
    if not numeric:
        try:
            return format(value, spec)
        except (ValueError, TypeError):
            raise TransformError(f"cannot format {show(value)} with {spec!r}") from None
    try:
        number = to_decimal(value, mark)
    except TransformError as exc:
        raise TransformError(f"cannot format {show(value)} with {spec!r}: {exc}") from None
    m = _NUMERIC_SPEC.fullmatch(spec)
    kind = m.group("type") if m else ""
    if kind in ("d", "x", "X", "o", "b", "c"):
        if number != number.to_integral_value():
            raise TransformError(f"cannot format {show(value)} with {spec!r}: not a whole number")
        return format(int(number), spec)
    with localcontext() as ctx:
        ctx.rounding = ROUND_HALF_UP
        if m and kind in ("f", "F", "%"):
            places = int(m.group("prec") or 6)
            scaled = number * 100 if kind == "%" else number
            rounded = no_negative_zero(scaled.quantize(Decimal(1).scaleb(-places)))
            number = rounded / 100 if kind == "%" else rounded
        if not spec:
            return plain(number)
        try:
            return format(number, spec)
        except (ValueError, TypeError):
            raise TransformError(f"cannot format {show(value)} with {spec!r}") from None
