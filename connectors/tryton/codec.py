"""Tryton's JSON-RPC value encoding: typed values travel as `{"__class__": ...}` objects.

Mirrors `trytond/protocols/jsonrpc.py` (8.2): datetime, date, time, timedelta, Decimal and bytes
are objects tagged by `__class__`; the server answers with the same encoding, so replies are
decoded with an `object_hook`. Datetimes are naive UTC with microseconds.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from typing import Any


def _encode(value: Any) -> Any:
    # datetime before date: datetime is a subclass of date.
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # Tryton stores naive UTC
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.time):
        return {
            "__class__": "time",
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, bytes | bytearray):
        return {"__class__": "bytes", "base64": base64.encodebytes(bytes(value)).decode("ascii")}
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} for Tryton")


def _decode(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind is None:
        return obj
    if kind == "datetime":
        return dt.datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj["hour"],
            obj["minute"],
            obj["second"],
            obj["microsecond"],
        )
    if kind == "date":
        return dt.date(obj["year"], obj["month"], obj["day"])
    if kind == "time":
        return dt.time(obj["hour"], obj["minute"], obj["second"], obj["microsecond"])
    if kind == "timedelta":
        return dt.timedelta(seconds=obj["seconds"])
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "bytes":
        return base64.decodebytes(obj["base64"].encode("ascii"))
    return obj


def dumps(value: Any) -> str:
    return json.dumps(value, default=_encode, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_decode)
