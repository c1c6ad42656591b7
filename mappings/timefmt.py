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

The calendar date is never moved behind the author's back:
- `date` and `%`-pattern outputs are written in the zone the value was read in (its own offset, or
  the input format's zone) unless `to_tz` asks for a conversion; `kingdee`/`kingdee_t` output is
  Shanghai wall time and `iso8601` output UTC, because those formats name their zone.
- A date-only value (`date` input, a bare ISO date, a `datetime.date` object) stays a date: it is
  written as that calendar date (midnight in a date-time format) unless `from_tz` places it in a
  zone, which makes it the instant of midnight there.
- A naive wall time that does not exist (a DST gap) or exists twice (a DST overlap) in its zone is
  an error unless `on_nonexistent: shift_forward|shift_backward` / `on_ambiguous: earlier|later`
  says which instant is meant.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from erphub.mappings.numbers import kind, show

NAMED_FORMATS = ("iso8601", "kingdee", "kingdee_t", "date", "epoch_ms", "epoch_s")
SHANGHAI = "Asia/Shanghai"
DEFAULT_TZ = {"iso8601": "UTC", "kingdee": SHANGHAI, "kingdee_t": SHANGHAI, "date": "UTC",
              "epoch_ms": "UTC", "epoch_s": "UTC"}

Moment = datetime | date  # an aware datetime, or a date-only value
Parser = Callable[[object], Moment]
Formatter = Callable[[Moment], object]
OnNonexistent = Literal["error", "shift_forward", "shift_backward"]
OnAmbiguous = Literal["error", "earlier", "later"]
ZONED_OUTPUTS = {"iso8601": "UTC", "kingdee": SHANGHAI, "kingdee_t": SHANGHAI}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

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
        raise ValueError(f"expected a date/time text, got {kind(value)} {show(value)}")
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
    raise ValueError(f"expected an epoch number, got {show(value)}")


def localiser(tz: tzinfo, on_nonexistent: OnNonexistent = "error",
              on_ambiguous: OnAmbiguous = "error") -> Callable[[datetime], datetime]:
    """`naive wall time -> aware datetime in tz`, refusing (or resolving as declared) DST gaps/overlaps."""
    if tz is UTC:
        return lambda dt: dt.replace(tzinfo=UTC)

    def localise(dt: datetime) -> datetime:
        early, late = dt.replace(tzinfo=tz, fold=0), dt.replace(tzinfo=tz, fold=1)
        off_early, off_late = early.utcoffset(), late.utcoffset()
        if off_early == off_late:
            return early
        wall = dt.replace(tzinfo=None)
        if early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:  # in a gap
            if on_nonexistent == "error":
                raise ValueError(f"{wall.isoformat(sep=' ')} does not exist in {tz} (the clocks skip it at a "
                                 f"DST change); set on_nonexistent: shift_forward or shift_backward")
            # fold=0 keeps the offset from before the change: the wall time lands after the gap
            moved = early if on_nonexistent == "shift_forward" else late
            return moved.astimezone(UTC).astimezone(tz)
        if on_ambiguous == "error":
            raise ValueError(f"{wall.isoformat(sep=' ')} happens twice in {tz} (the clocks go back at a "
                             f"DST change); set on_ambiguous: earlier or later")
        return early if on_ambiguous == "earlier" else late

    return localise


def make_parser(fmt: str, tz_name: str | None, on_nonexistent: OnNonexistent = "error",
                on_ambiguous: OnAmbiguous = "error") -> Parser:
    """`value -> aware datetime, or date`; raises ValueError on anything it cannot read exactly.

    Connectors that decode typed JSON (Tryton) hand over `date`/`datetime` objects rather than
    text: those are taken as they are, in the source zone when naive, whatever `fmt` says. With an
    explicit `tz_name` a date-only value becomes midnight in that zone.
    """
    tz = zone(tz_name or DEFAULT_TZ.get(fmt, "UTC"))
    localise = localiser(tz, on_nonexistent, on_ambiguous)
    parse_text = _make_text_parser(fmt, localise)
    placed = tz_name is not None

    def parse(value: object) -> Moment:
        if isinstance(value, datetime):
            out: Moment = value if value.tzinfo is not None else localise(value)
        elif isinstance(value, date):
            out = value
        else:
            out = parse_text(value)
        if placed and not isinstance(out, datetime):
            return localise(datetime(out.year, out.month, out.day))
        return out

    return parse


def _make_text_parser(fmt: str, localise: Callable[[datetime], datetime]) -> Parser:

    def aware(dt: datetime) -> datetime:
        return localise(dt) if dt.tzinfo is None else dt

    if fmt == "iso8601":
        def parse_iso(value: object) -> Moment:
            text = _text(value)
            try:
                if _ISO_DATE.fullmatch(text):
                    return date.fromisoformat(text)
                return aware(datetime.fromisoformat(text))
            except ValueError:
                raise ValueError(f"not an ISO 8601 date/time: {text!r}") from None
        return parse_iso
    if fmt in ("kingdee", "kingdee_t", "date"):
        def parse_kingdee(value: object) -> Moment:
            text = _text(value)
            m = _KINGDEE.fullmatch(text)
            if m is None or (fmt == "date" and m.group(4) is not None):
                raise ValueError(f"not a {fmt} date/time: {text!r}")
            y, mo, d, h, mi, s, frac = m.groups()
            micro = int((frac or "0").ljust(6, "0")[:6])
            try:
                if fmt == "date":
                    return date(int(y), int(mo), int(d))
                return localise(datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro))
            except ValueError as exc:  # 2023-02-29, 24:00, month 13 ...
                if "DST" in str(exc):
                    raise
                raise ValueError(f"not a valid date/time: {text!r} ({exc})") from None
        return parse_kingdee
    if fmt in ("epoch_ms", "epoch_s"):
        scale = 1000 if fmt == "epoch_ms" else 1

        def parse_epoch(value: object) -> Moment:
            number = _epoch_number(value)
            try:
                return _EPOCH + timedelta(microseconds=int(number * 1_000_000 / scale))
            except OverflowError:
                raise ValueError(f"epoch value out of range: {show(value)}") from None
        return parse_epoch
    if "%" in fmt:
        has_time = any(d in fmt for d in ("%H", "%I", "%M", "%S", "%f", "%p", "%X", "%c", "%z", "%s"))

        def parse_pattern(value: object) -> Moment:
            text = _text(value)
            try:
                dt = datetime.strptime(text, fmt)
            except ValueError:
                raise ValueError(f"{text!r} does not match the date format {fmt!r}") from None
            return aware(dt) if has_time else dt.date()
        return parse_pattern
    raise KeyError(fmt)


def make_formatter(fmt: str, tz_name: str | None) -> Formatter:
    """`aware datetime or date -> value in fmt`.

    The target zone is `tz_name`, else the zone the format names (iso8601: UTC, kingdee: Shanghai),
    else the value's own zone (no conversion). A date is written as that calendar date.
    """
    named = tz_name or ZONED_OUTPUTS.get(fmt)
    tz = zone(named) if named else None

    def local(dt: Moment) -> datetime:
        if not isinstance(dt, datetime):
            return datetime(dt.year, dt.month, dt.day, tzinfo=tz or UTC)
        return dt.astimezone(tz) if tz is not None else dt

    if fmt == "iso8601":
        def fmt_iso(dt: Moment) -> str:
            lt = local(dt)
            text = lt.strftime("%Y-%m-%dT%H:%M:%S") + f".{lt.microsecond // 1000:03d}"
            offset = lt.strftime("%z")
            return text + ("Z" if lt.utcoffset() == timedelta(0) else offset[:3] + ":" + offset[3:])
        return fmt_iso
    if fmt == "kingdee":
        return lambda dt: local(dt).strftime("%Y-%m-%d %H:%M:%S")
    if fmt == "kingdee_t":
        return lambda dt: local(dt).strftime("%Y-%m-%dT%H:%M:%S")
    if fmt == "date":
        return lambda dt: local(dt).date().isoformat()
    if fmt in ("epoch_ms", "epoch_s"):
        unit = timedelta(milliseconds=1) if fmt == "epoch_ms" else timedelta(seconds=1)
        return lambda dt: (local(dt) - _EPOCH) // unit
    if "%" in fmt:
        return lambda dt: local(dt).strftime(fmt)
    raise KeyError(fmt)


def is_known_format(fmt: str) -> bool:
    return fmt in NAMED_FORMATS or "%" in fmt
