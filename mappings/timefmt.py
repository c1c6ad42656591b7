"""Dates and datetimes between the formats our systems speak.

Named formats (anything containing `%` is a strftime/strptime pattern instead):

| name       | looks like                    | naive values are in        |
|------------|-------------------------------|----------------------------|
| iso8601    | 2026-03-01T02:30:00.000Z      | UTC (when no offset given) |
| kingdee    | 2026-03-01 10:30:00           | Asia/Shanghai              |
| kingdee_t  | 2026-03-01T10:30:00           | Asia/Shanghai              |
| date       | 2026-03-01                    | UTC                        |
| epoch_ms   | 1772332200000                 | (absolute)                 |
| epoch_s    | 1772332200                    | (absolute)                 |

Parsing `kingdee`/`kingdee_t` accepts either separator, fractional seconds (`.537`, as Kingdee
returns) and a bare date. Parsing `iso8601` accepts any ISO 8601 form with `Z` or an offset.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NAMED_FORMATS = ("iso8601", "kingdee", "kingdee_t", "date", "epoch_ms", "epoch_s")
SHANGHAI = "Asia/Shanghai"
DEFAULT_TZ = {"iso8601": "UTC", "kingdee": SHANGHAI, "kingdee_t": SHANGHAI, "date": "UTC",
              "epoch_ms": "UTC", "epoch_s": "UTC"}

Parser = Callable[[object], datetime]
Formatter = Callable[[datetime], object]

_KINGDEE = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def zone(name: str) -> tzinfo:
    """A time zone by IANA name; raises ValueError for an unknown name (a compile error)."""
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai "
                         f"or UTC)") from None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a date/time text, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError("empty date/time")
    return text


def _epoch_number(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected an epoch number, got a boolean")
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        return Decimal(value.strip())
    raise ValueError(f"expected an epoch number, got {value!r}")


def make_parser(fmt: str, tz_name: str | None) -> Parser:
    """`value -> aware datetime`; raises ValueError on anything it cannot read exactly.

    Connectors that decode typed JSON (Tryton) hand over `date`/`datetime` objects rather than
    text: those are taken as they are, in the source zone when naive, whatever `fmt` says.
    """
    tz = zone(tz_name or DEFAULT_TZ.get(fmt, "UTC"))
    parse_text = _make_text_parser(fmt, tz)

    def parse(value: object) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=tz)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=tz)
        return parse_text(value)

    return parse


def _make_text_parser(fmt: str, tz: tzinfo) -> Parser:

    def localise(dt: datetime) -> datetime:
        return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt

    if fmt == "iso8601":
        def parse_iso(value: object) -> datetime:
            text = _text(value)
            try:
                return localise(datetime.fromisoformat(text))
            except ValueError:
                raise ValueError(f"not an ISO 8601 date/time: {text!r}") from None
        return parse_iso
    if fmt in ("kingdee", "kingdee_t", "date"):
        def parse_kingdee(value: object) -> datetime:
            text = _text(value)
            m = _KINGDEE.fullmatch(text)
            if m is None or (fmt == "date" and m.group(4) is not None):
                raise ValueError(f"not a {fmt} date/time: {text!r}")
            y, mo, d, h, mi, s, frac = m.groups()
            micro = int((frac or "0").ljust(6, "0")[:6])
            try:
                return datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro,
                                tzinfo=tz)
            except ValueError as exc:  # 2023-02-29, 24:00, month 13 ...
                raise ValueError(f"not a valid date/time: {text!r} ({exc})") from None
        return parse_kingdee
    if fmt in ("epoch_ms", "epoch_s"):
        scale = 1000 if fmt == "epoch_ms" else 1

        def parse_epoch(value: object) -> datetime:
            number = _epoch_number(value)
            try:
                return _EPOCH + timedelta(microseconds=int(number * 1_000_000 / scale))
            except OverflowError:
                raise ValueError(f"epoch value out of range: {value!r}") from None
        return parse_epoch
    if "%" in fmt:
        def parse_pattern(value: object) -> datetime:
            text = _text(value)
            try:
                return localise(datetime.strptime(text, fmt))
            except ValueError:
                raise ValueError(f"{text!r} does not match the date format {fmt!r}") from None
        return parse_pattern
    raise KeyError(fmt)


def make_formatter(fmt: str, tz_name: str | None) -> Formatter:
    """`aware datetime -> value in fmt, in the target time zone`."""
    tz = zone(tz_name or DEFAULT_TZ.get(fmt, "UTC"))
    if fmt == "iso8601":
        def fmt_iso(dt: datetime) -> str:
            local = dt.astimezone(tz)
            text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond // 1000:03d}"
            return text + ("Z" if tz is UTC else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:])
        return fmt_iso
    if fmt == "kingdee":
        return lambda dt: dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    if fmt == "kingdee_t":
        return lambda dt: dt.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")
    if fmt == "date":
        return lambda dt: dt.astimezone(tz).date().isoformat()
    if fmt == "epoch_ms":
        return lambda dt: (dt - _EPOCH) // timedelta(milliseconds=1)
    if fmt == "epoch_s":
        return lambda dt: (dt - _EPOCH) // timedelta(seconds=1)
    if "%" in fmt:
        return lambda dt: dt.astimezone(tz).strftime(fmt)
    raise KeyError(fmt)


def is_known_format(fmt: str) -> bool:
    return fmt in NAMED_FORMATS or "%" in fmt

