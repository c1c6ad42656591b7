"""Outcomes as plain JSON-able dicts and readable lines (for `erphub mapping test` and golden files)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from erphub.mappings.numbers import plain
from erphub.mappings.plan import Mapped, Outcome, Rejected, Skipped


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)  # exact: 12.50 stays "12.50", 1E-7 is "0.0000001"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def dumps(data: Any, *, indent: int | None = 2) -> str:
    # allow_nan=False: a NaN that slipped through would be invalid JSON; say so instead of writing it
    return json.dumps(data, ensure_ascii=False, indent=indent, default=_default, sort_keys=False, allow_nan=False)


def outcome_dict(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Mapped):
        return {"outcome": "mapped", "key": outcome.key, "data": json.loads(dumps(outcome.data, indent=None))}
    if isinstance(outcome, Rejected):
        return {"outcome": "rejected", "field": outcome.field, "code": outcome.code, "reason": outcome.reason}
    if isinstance(outcome, Skipped):
        return {"outcome": "skipped", "reason": outcome.reason}
    raise TypeError(f"not an outcome: {outcome!r}")


def outcome_text(index: int, label: str, outcome: Outcome) -> str:
    head = f"#{index} {label}".rstrip()
    if isinstance(outcome, Mapped):
        body = dumps(outcome.data)
        indented = "\n".join("    " + line for line in body.splitlines())
        return f"{head}: mapped (key {outcome.key})\n{indented}"
    if isinstance(outcome, Rejected):
        where = outcome.field or "(record)"
        return f"{head}: REJECTED {where}: {outcome.reason} [{outcome.code}]"
    return f"{head}: skipped: {outcome.reason}"


def unwrap_record(item: Any) -> tuple[str, Any]:
    """Sample files may hold raw data dicts or `{id, updated_at, data}` records; (label, data)."""
    if isinstance(item, Mapping) and "data" in item and set(item) <= {"id", "updated_at", "data", "note"}:
        label = str(item.get("id", ""))
        if item.get("note"):
            label = f"{label} ({item['note']})".strip()
        return label, item["data"]
    return "", item
