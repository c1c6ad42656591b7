"""JSON on the wire: request bodies and answers, through orjson, with the stdlib as the fallback.

Encoding and decoding were a tenth of a sync's CPU (bench (b), py-spy): orjson does the same work
several times faster. The bytes sent are those httpx's own `json=` sends (UTF-8, no spaces, keys
in insertion order); values JSON has no type for (Decimal, datetime, dataclasses) go to the
caller's `default`, or fail as the stdlib would. What orjson refuses and the stdlib accepts
(integers beyond 64 bits, non-string keys; in an answer also NaN literals, a BOM, UTF-16) goes to
the stdlib, and so does an answer holding an integer orjson would read as a rounded float: the
behaviour differs only in speed. One exception: orjson writes a float NaN or infinity as null
where the stdlib refuses it, and none reaches a connector (the mappings refuse non-finite
numbers: mappings/codegen.py `_finite`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

Default = Callable[[Any], Any]

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# orjson reads an integer beyond 64 bits as a float, silently rounded: an answer holding a run of
# 19 digits or more is read by the stdlib. Found by mapping every digit to "0" and everything else
# to a space, then one substring search: both in C, a twentieth of a regex's time on a page of 100
# records. A digit run inside a string (a long numeric code) is a false alarm, which costs only
# speed; ids such as Jiandaoyun's 24-hex `_id` seldom hold 19 decimal digits in a row.
_DIGITS_ONLY = bytes(b if 48 <= b <= 57 else 32 for b in range(256)).replace(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(payload: Any, default: Default | None = None) -> bytes:
    """A request body, as UTF-8 bytes."""
    try:
        return orjson.dumps(payload, default=default or _refuse, option=_OPTIONS)
    except orjson.JSONEncodeError:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=default)
        return text.encode("utf-8")


def loads(raw: bytes) -> Any:
    """An answer's body; raises ValueError when it is not JSON."""
    if _LONG_RUN in raw.translate(_DIGITS_ONLY):
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
