"""Checks and conversions of the values a mapping writes, shared by customers and sales orders.

Each failure is a `RecordWriteRefused`, so it fails only the record it came from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from erphub.core.errors import RecordWriteRefused, UnknownReference

T = TypeVar("T")


def check_fields(data: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    """Refuse a record naming a field the entity does not have (a typo would be lost silently)."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecordWriteRefused("unknown_field", f"{what} has no field {', '.join(unknown)}", unknown[0])


def reference(getter: Callable[[str, str], T], value: str, field: str) -> T:
    """A reference-data look-up (RefData) whose miss refuses the record instead of the batch."""
    try:
        return getter(value, field)
    except UnknownReference as exc:
        raise RecordWriteRefused("unknown_reference", str(exc), exc.field) from None


def to_decimal(value: Any, field: str) -> Decimal:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RecordWriteRefused("invalid_number", f"{field}: {value!r} is not a number", field) from None


def to_date(value: Any, field: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise RecordWriteRefused("invalid_date", f"{field}: {value!r} is not a date (YYYY-MM-DD)", field) from None
