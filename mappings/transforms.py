"""The named transforms a mapping can chain, each compiled once into a plain `value -> value`.

Every transform is registered with its argument model (pydantic, extra keys refused), a one-line
summary and an example, which is what `erphub mapping transforms` prints. A builder runs at
compile time and returns a closure; the closure runs per record and either returns the new value
or raises TransformError (the record is rejected with that message; nothing is guessed).

Conventions: None passes through every transform unchanged (the field's `default` and
`validate.required` decide about absence), except `default`, `count` and `blank_to_null`.
Text transforms accept numbers (they are written as text) but refuse objects and lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from erphub.core.errors import ArgError, TransformError
from erphub.mappings import textnorm, timefmt
from erphub.mappings.lookups import LookupTable, LookupTableError
from erphub.mappings.numbers import (
    EXACT,
    DecimalMark,
    exact,
    finite_problem,
    no_negative_zero,
    parse_text,
    plain,
    show,
    to_decimal,
)

Fn = Callable[[Any], Any]


class BuildContext(Protocol):
    decimal_mark: DecimalMark  # the mapping's `decimal:` (point unless it declares comma)

    def lookup_table(self, name: str) -> LookupTable: ...


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _yaml_null_policy(cls, data: Any) -> Any:
        # `on_missing: null` is YAML's null, not the text "null"; both mean the null policy.
        if isinstance(data, dict):
            return {k: ("null" if v is None and k.startswith("on_") else v) for k, v in data.items()}
        return data


@dataclass(frozen=True, slots=True)
class TransformDef:
    name: str
    summary: str
    example: str
    args: type[Args] | None
    positional: str | None  # the argument a bare scalar fills: `truncate: 40`
    build: Callable[[Any, BuildContext], Fn]

    def signature(self) -> str:
        if self.args is None:
            return ""
        parts = []
        for name, info in self.args.model_fields.items():
            shown = info.alias or name
            parts.append(shown if info.is_required() else f"{shown}={info.default!r}")
        return ", ".join(parts)


TRANSFORMS: dict[str, TransformDef] = {}


# Transforms whose result is always text, a boolean, a finite Decimal/int/float or null: a field
# ending with one of them needs no NaN check in the generated code.
FINITE_OUT = {"trim", "upper", "lower", "halfwidth", "collapse_spaces", "truncate", "replace", "regex_replace",
              "to_str", "to_int", "to_decimal", "to_float", "to_bool", "round", "multiply", "money", "sum",
              "count", "datetime", "phone", "uscc", "join"}


def transform(name: str, *, summary: str, example: str, args: type[Args] | None = None,
              positional: str | None = None) -> Callable[[Callable[[Any, BuildContext], Fn]],
                                                          Callable[[Any, BuildContext], Fn]]:
    def register(build: Callable[[Any, BuildContext], Fn]) -> Callable[[Any, BuildContext], Fn]:
        def marked(parsed: Any, ctx: BuildContext) -> Fn:
            fn = build(parsed, ctx)
            if name in FINITE_OUT:
                fn.finite_out = True  # type: ignore[attr-defined]
            return fn

        TRANSFORMS[name] = TransformDef(name, summary, example, args, positional, marked)
        return build

    return register


# --- helpers -----------------------------------------------------------------------------------

def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TransformError(f"expected text, got {_kind(value)}")
    if isinstance(value, Decimal | float):
        return plain(to_decimal(value))  # refuses NaN/infinity; never '1E-7' or '-0.00'
    return str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"text {_short(value)}"
    return f"the number {show(value)}" if isinstance(value, int | float | Decimal) else show(value)


def _short(value: Any, limit: int = 60) -> str:
    return show(value, limit)


def _none_safe(fn: Fn) -> Fn:
    def wrapped(value: Any) -> Any:
        return None if value is None else fn(value)

    return wrapped


def _text_fn(fn: Callable[[str], Any]) -> Fn:
    def wrapped(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is str:
            return fn(value)
        return fn(_text(value))

    wrapped.str_fast = fn  # type: ignore[attr-defined]  # generated code calls fn directly on text
    return wrapped


def _checked(fn: Callable[[str], str], on_invalid: str) -> Fn:
    """Wrap a ValueError-raising normaliser with an on_invalid policy."""
    def wrapped(value: Any) -> Any:
        if value is None:
            return None
        text = value if value.__class__ is str else _text(value)
        if not text.strip():
            return None
        try:
            return fn(text)
        except ValueError as exc:
            if on_invalid == "null":
                return None
            if on_invalid == "pass":
                return value
            raise TransformError(str(exc)) from None

    return wrapped


OnInvalid = Literal["error", "null", "pass"]

# --- text ----------------------------------------------------------------------------------------


@transform("trim", summary="strip leading/trailing whitespace (incl. full-width space U+3000)",
           example="'  ACME  ' -> 'ACME'")
def _trim(args: None, ctx: BuildContext) -> Fn:
    return _text_fn(str.strip)


@transform("upper", summary="upper-case", example="'cus-001' -> 'CUS-001'")
def _upper(args: None, ctx: BuildContext) -> Fn:
    return _text_fn(str.upper)


@transform("lower", summary="lower-case", example="'A@B.CN' -> 'a@b.cn'")
def _lower(args: None, ctx: BuildContext) -> Fn:
    return _text_fn(str.lower)


@transform("halfwidth", summary="full-width letters, digits, punctuation and space -> half-width",
           example="'ＡＢＣ１２３' -> 'ABC123'")
def _halfwidth(args: None, ctx: BuildContext) -> Fn:
    return _text_fn(textnorm.halfwidth)


_SPACES = re.compile(r"\s+")


@transform("collapse_spaces", summary="runs of whitespace -> one space, then trim",
           example="'a   b\\n c' -> 'a b c'")
def _collapse(args: None, ctx: BuildContext) -> Fn:
    return _text_fn(lambda s: _SPACES.sub(" ", s).strip())


@transform("blank_to_null", summary="empty or whitespace-only text -> null", example="'   ' -> null")
def _blank(args: None, ctx: BuildContext) -> Fn:
    def blank(value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    return blank


class TruncateArgs(Args):
    length: StrictInt = Field(gt=0)


@transform("truncate", args=TruncateArgs, positional="length",
           summary="keep the first N characters (code points; 汉字 count as one)",
           example="truncate: 4   'ABCDEF' -> 'ABCD'")
def _truncate(args: TruncateArgs, ctx: BuildContext) -> Fn:
    n = args.length
    return _text_fn(lambda s: s[:n])


class ReplaceArgs(Args):
    old: str = Field(min_length=1)
    new: str = ""


@transform("replace", args=ReplaceArgs, summary="replace every occurrence of a text",
           example="replace: {old: '-', new: ''}   '138-0000' -> '1380000'")
def _replace(args: ReplaceArgs, ctx: BuildContext) -> Fn:
    old, new = args.old, args.new
    return _text_fn(lambda s: s.replace(old, new))


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ArgError(f"invalid regular expression {pattern!r}: {exc}", "pattern") from None


class RegexReplaceArgs(Args):
    pattern: str
    repl: str = ""


@transform("regex_replace", args=RegexReplaceArgs, summary="replace regex matches (\\1 refers to groups)",
           example="regex_replace: {pattern: '\\D', repl: ''}   'a1b2' -> '12'")
def _regex_replace(args: RegexReplaceArgs, ctx: BuildContext) -> Fn:
    rx = _regex(args.pattern)
    repl = args.repl
    try:
        rx.sub(repl, "")
    except (re.error, IndexError) as exc:
        raise ArgError(f"invalid replacement {repl!r}: {exc}", "repl") from None
    return _text_fn(lambda s: rx.sub(repl, s))


class RegexExtractArgs(Args):
    pattern: str
    group: StrictInt | str = 0
    on_nomatch: OnInvalid = "error"


@transform("regex_extract", args=RegexExtractArgs, positional="pattern",
           summary="the first match (or a group of it); on_nomatch: error|null|pass",
           example="regex_extract: {pattern: 'SO-(\\d+)', group: 1}   'ref SO-17' -> '17'")
def _regex_extract(args: RegexExtractArgs, ctx: BuildContext) -> Fn:
    rx = _regex(args.pattern)
    group = args.group
    if isinstance(group, int) and group > rx.groups:
        raise ArgError(f"pattern has {rx.groups} group(s), group {group} does not exist", "group")
    if isinstance(group, str) and group not in rx.groupindex:
        raise ArgError(f"pattern has no group named {group!r}", "group")
    policy = args.on_nomatch

    def extract(text: str) -> Any:
        m = rx.search(text)
        if m is None:
            if policy == "null":
                return None
            if policy == "pass":
                return text
            raise TransformError(f"{_short(text)} does not match {args.pattern!r}")
        return m.group(group)

    return _text_fn(extract)


class SplitArgs(Args):
    sep: str = Field(default=",", min_length=1)
    trim: StrictBool = True
    drop_empty: StrictBool = True


@transform("split", args=SplitArgs, positional="sep", summary="text -> list of texts",
           example="split: ';'   'a; b;;c' -> ['a', 'b', 'c']")
def _split(args: SplitArgs, ctx: BuildContext) -> Fn:
    sep, trim, drop = args.sep, args.trim, args.drop_empty

    def split(text: str) -> list[str]:
        parts = text.split(sep)
        if trim:
            parts = [p.strip() for p in parts]
        if drop:
            parts = [p for p in parts if p]
        return parts

    return _text_fn(split)


class JoinArgs(Args):
    sep: str = ""


@transform("join", args=JoinArgs, positional="sep", summary="list -> text, skipping null and empty items",
           example="join: ' '   ['广东省', null, '深圳市'] -> '广东省 深圳市'")
def _join(args: JoinArgs, ctx: BuildContext) -> Fn:
    sep = args.sep

    def join(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list):
            raise TransformError(f"join expects a list, got {_kind(value)}")
        parts = [_text(v) for v in value if v is not None and v != ""]
        return sep.join(parts) if parts else None

    return join


# --- conversions ---------------------------------------------------------------------------------

@transform("to_str", summary="number/boolean -> text (Decimal keeps its digits)", example="12.50 -> '12.50'")
def _to_str(args: None, ctx: BuildContext) -> Fn:
    def to_str(value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, date):  # datetime too: ISO 8601, the one unambiguous text form
            return value.isoformat()
        return _text(value)

    return to_str


@transform("to_int", summary="integer; refuses fractions (round first)",
           example="'42' -> 42; '4.5' -> rejected")
def _to_int(args: None, ctx: BuildContext) -> Fn:
    mark = ctx.decimal_mark

    def to_int(value: Any) -> Any:
        if value is None or (type(value) is int):
            return value
        number = to_decimal(value, mark)
        if number != number.to_integral_value():
            raise TransformError(f"{_short(value)} is not a whole number")
        return int(number)

    return to_int


@transform("to_decimal", summary="exact decimal number from text or number (floats via their shortest text)",
           example="'１２.５' -> Decimal('12.5')")
def _to_decimal(args: None, ctx: BuildContext) -> Fn:
    mark = ctx.decimal_mark

    def to_dec(value: Any) -> Any:
        cls = value.__class__
        if cls is int:  # the common cases without a second call
            return Decimal(value)
        if cls is Decimal and value.is_finite():
            return value
        return None if value is None else to_decimal(value, mark)

    return to_dec


@transform("to_float", summary="binary float (for targets that want JSON numbers)", example="'12.5' -> 12.5")
def _to_float(args: None, ctx: BuildContext) -> Fn:
    mark = ctx.decimal_mark
    return _none_safe(lambda v: float(to_decimal(v, mark)))


_TRUE = {"true", "1", "yes", "y", "t", "是", "对", "真"}
_FALSE = {"false", "0", "no", "n", "f", "否", "错", "假"}


@transform("to_bool", summary="true/false, 1/0, yes/no, 是/否 -> boolean; anything else rejected",
           example="'是' -> true")
def _to_bool(args: None, ctx: BuildContext) -> Fn:
    def to_bool(value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        raise TransformError(f"not a yes/no value: {_kind(value)}")

    return to_bool


# --- numbers ---------------------------------------------------------------------------------------

ROUNDING = {
    "half_up": ROUND_HALF_UP,  # 四舍五入, what Chinese finance expects
    "half_even": ROUND_HALF_EVEN,
    "half_down": ROUND_HALF_DOWN,
    "down": ROUND_DOWN,
    "up": ROUND_UP,
    "floor": ROUND_FLOOR,
    "ceiling": ROUND_CEILING,
}
RoundMode = Literal["half_up", "half_even", "half_down", "down", "up", "floor", "ceiling"]


class RoundArgs(Args):
    places: StrictInt = Field(ge=0, le=12)
    mode: RoundMode  # no default on purpose: the author states the rounding rule


@transform("round", args=RoundArgs, summary="decimal rounding to N places with an explicit mode "
           "(half_up|half_even|half_down|down|up|floor|ceiling)",
           example="round: {places: 2, mode: half_up}   2.345 -> Decimal('2.35')")
def _round(args: RoundArgs, ctx: BuildContext) -> Fn:
    exp = Decimal(1).scaleb(-args.places)
    mode = ROUNDING[args.mode]
    mark = ctx.decimal_mark

    def rnd(value: Any) -> Any:
        if value is None:
            return None
        try:
            if value.__class__ is float and value - value == 0:  # finite float: read as its shortest text
                out = Decimal(repr(value)).quantize(exp, rounding=mode)
            else:
                out = to_decimal(value, mark).quantize(exp, rounding=mode)
            return out if out or not out.is_signed() else out.copy_abs()  # -0.001 -> 0.00, not -0.00
        except InvalidOperation:
            raise TransformError(f"{_short(value)} is too large to round to {args.places} places") from None

    return rnd


class MultiplyArgs(Args):
    by: StrictInt | float | str


@transform("multiply", args=MultiplyArgs, positional="by", summary="multiply by an exact decimal factor",
           example="multiply: 100   '12.34' -> Decimal('1234.00')")
def _multiply(args: MultiplyArgs, ctx: BuildContext) -> Fn:
    try:
        factor = to_decimal(args.by)
    except TransformError as exc:
        raise ArgError(str(exc), "by") from None
    mark = ctx.decimal_mark
    return _none_safe(lambda v: exact(EXACT.multiply, to_decimal(v, mark), factor))


CURRENCY_PLACES = {"CNY": 2, "USD": 2, "EUR": 2, "HKD": 2, "GBP": 2, "JPY": 0, "KRW": 0, "TWD": 2}
_CURRENCY_MARKS = {"¥": "CNY", "￥": "CNY", "元": "CNY", "RMB": "CNY", "CNY": "CNY", "$": "USD", "US$": "USD",
                   "USD": "USD", "€": "EUR", "EUR": "EUR", "HK$": "HKD", "HKD": "HKD", "£": "GBP",
                   "GBP": "GBP", "JPY": "JPY", "円": "JPY"}
_MONEY = re.compile(r"(?P<sign>[+-]?)(?P<pre>[^\d\s+\-.,]*)\s*(?P<num>[+-]?[\d.,]*\d)\s*(?P<post>[^\d\s]*)")


class MoneyArgs(Args):
    currency: str | None = None
    mode: RoundMode = "half_up"

    @field_validator("currency")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in CURRENCY_PLACES:
            raise ValueError(f"unknown currency {value!r}; known: {', '.join(sorted(CURRENCY_PLACES))}")
        return value.upper() if value else value


@transform("money", args=MoneyArgs, positional="currency",
           summary="an amount in a currency: reads '¥1,234.5', 'USD 12', '12.5元'; rounds to the currency's "
                   "minor unit (default mode half_up); a symbol that contradicts `currency` is rejected",
           example="money: CNY   '￥1,234.565' -> Decimal('1234.57')")
def _money(args: MoneyArgs, ctx: BuildContext) -> Fn:
    declared, mode, mark = args.currency, ROUNDING[args.mode], ctx.decimal_mark

    def money(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            if "，" in value or "．" in value:  # a full-width comma is a typo we do not guess about
                raise TransformError(f"not an amount of money: {_short(value)} has a full-width separator")
            text = textnorm.halfwidth(value).strip().replace(" ", "")
            m = _MONEY.fullmatch(text)
            if m is None:
                raise TransformError(f"not an amount of money: {_short(value)}")
            marks = [x for x in (m.group("pre"), m.group("post")) if x]
            found = {_CURRENCY_MARKS.get(x.upper()) for x in marks}
            if None in found:
                raise TransformError(f"unknown currency mark in {_short(value)}")
            if len(found) > 1 or (declared and found and found != {declared}):
                raise TransformError(f"currency of {_short(value)} is not {declared}")
            currency = declared or (found.pop() if found else None)
            number = parse_text(m.group("num"), mark)
            if m.group("sign") == "-":
                if number.is_signed():
                    raise TransformError(f"not an amount of money: {_short(value)}")
                number = -number
        else:
            currency = declared
            number = to_decimal(value, mark)
        if currency is None:
            raise TransformError(f"no currency given or written in {_short(value)}")
        return no_negative_zero(number.quantize(Decimal(1).scaleb(-CURRENCY_PLACES[currency]), rounding=mode))

    return money


def _list_arg(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise TransformError(f"{name} expects a list (use a path with [*]), got {_kind(value)}")
    return value


@transform("sum", summary="sum of a list of numbers (path with [*]); an empty item is rejected, not skipped",
           example="from: lines[*].amount, transforms: [sum]   [1.5, 2] -> Decimal('3.5')")
def _sum(args: None, ctx: BuildContext) -> Fn:
    mark = ctx.decimal_mark

    def total(value: Any) -> Any:
        if value is None:
            return None
        items = _list_arg(value, "sum")
        acc = Decimal(0)
        for i, item in enumerate(items):
            if item is None or item == "":
                raise TransformError(f"item {i} of the list is empty; refusing to sum a partial list")
            acc = exact(EXACT.add, acc, to_decimal(item, mark))
        return acc

    return total


@transform("first", summary="first item of a list (null when empty)", example="['a', 'b'] -> 'a'")
def _first(args: None, ctx: BuildContext) -> Fn:
    return _none_safe(lambda v: (_list_arg(v, "first") or [None])[0])


@transform("last", summary="last item of a list (null when empty)", example="['a', 'b'] -> 'b'")
def _last(args: None, ctx: BuildContext) -> Fn:
    return _none_safe(lambda v: (_list_arg(v, "last") or [None])[-1])


@transform("count", summary="number of items in a list (0 for null)", example="['a', 'b'] -> 2")
def _count(args: None, ctx: BuildContext) -> Fn:
    return lambda v: 0 if v is None else len(_list_arg(v, "count"))


# --- dates -----------------------------------------------------------------------------------------

class DatetimeArgs(Args):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    from_tz: str | None = None
    to_tz: str | None = None
    on_nonexistent: timefmt.OnNonexistent = "error"  # a wall time inside a DST gap
    on_ambiguous: timefmt.OnAmbiguous = "error"  # a wall time that a DST change repeats


@transform("datetime", args=DatetimeArgs,
           summary="convert between date/time formats and zones: iso8601, kingdee ('yyyy-MM-dd HH:mm:ss', "
                   "Asia/Shanghai), kingdee_t, date, epoch_ms, epoch_s or a %-pattern; `date` and patterns "
                   "keep the value's zone unless to_tz is given; on_nonexistent: error|shift_forward|"
                   "shift_backward, on_ambiguous: error|earlier|later for DST changes",
           example="datetime: {from: iso8601, to: kingdee}   '2026-03-01T02:30:00Z' -> '2026-03-01 10:30:00'")
def _datetime(args: DatetimeArgs, ctx: BuildContext) -> Fn:
    for name, fmt in (("from", args.from_), ("to", args.to)):
        if not timefmt.is_known_format(fmt):
            raise ArgError(f"unknown date format {fmt!r}; use one of {', '.join(timefmt.NAMED_FORMATS)} "
                           f"or a pattern such as '%Y/%m/%d'", name)
    for name, tz in (("from_tz", args.from_tz), ("to_tz", args.to_tz)):
        if tz is not None:
            try:
                timefmt.zone(tz)
            except ValueError as exc:
                raise ArgError(str(exc), name) from None
    parse = timefmt.make_parser(args.from_, args.from_tz, args.on_nonexistent, args.on_ambiguous)
    render = timefmt.make_formatter(args.to, args.to_tz)

    fast_iso = args.from_ == "iso8601"
    fromiso = datetime.fromisoformat

    def convert(value: Any) -> Any:
        if fast_iso and value.__class__ is str and len(value) > 19:  # clean ISO text with a zone: no detour
            try:
                dt = fromiso(value)
            except ValueError:
                dt = None
            if dt is not None and dt.tzinfo is not None:
                try:
                    return render(dt)
                except (ValueError, OverflowError) as exc:
                    raise TransformError(str(exc)) from None
        if value is None:
            return None
        if isinstance(value, str) and not value.strip():
            return None
        try:
            return render(parse(value))
        except (ValueError, OverflowError) as exc:
            raise TransformError(str(exc)) from None

    return convert


# --- Chinese identifiers ---------------------------------------------------------------------------

class ValidityArgs(Args):
    on_invalid: OnInvalid = "error"


@transform("phone", args=ValidityArgs, positional="on_invalid",
           summary="mainland phone: mobile -> 11 digits, landline -> 0755-12345678[-ext]; "
                   "+86/full-width/spaces removed; on_invalid: error|null|pass",
           example="'+86 138 1234 5678' -> '13812345678'")
def _phone(args: ValidityArgs, ctx: BuildContext) -> Fn:
    return _checked(textnorm.normalise_phone, args.on_invalid)


@transform("uscc", args=ValidityArgs, positional="on_invalid",
           summary="统一社会信用代码: half-width, upper-case, 18 chars, "
                   "GB 32100-2015 check character verified",
           example="'91350100m000100y43' -> '91350100M000100Y43'")
def _uscc(args: ValidityArgs, ctx: BuildContext) -> Fn:
    return _checked(textnorm.normalise_uscc, args.on_invalid)


# --- value maps and code tables -------------------------------------------------------------------

OnUnknown = Literal["error", "null", "default", "pass"]


def _code(value: Any) -> str | None:
    """The text a value map or lookup compares: YAML keys and CSV cells are text."""
    if isinstance(value, str):
        return value
    if value.__class__ is int:
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value) if value.is_finite() else None
    if isinstance(value, int | float):
        return str(value)
    return None


class MapArgs(Args):
    values: dict[str, Any] = Field(min_length=1)
    on_unknown: OnUnknown = "error"
    default: Any = None


@transform("map", args=MapArgs, summary="value map for enums/statuses; on_unknown: error|null|default|pass",
           example="map: {values: {正式: A, 潜在: B}, on_unknown: error}   '正式' -> 'A'")
def _map(args: MapArgs, ctx: BuildContext) -> Fn:
    table, policy, default = dict(args.values), args.on_unknown, args.default
    if policy == "default" and "default" not in args.model_fields_set:
        raise ArgError("on_unknown: default needs a `default:` value", "on_unknown")
    known = ", ".join(repr(k) for k in list(table)[:10]) + (" ..." if len(table) > 10 else "")
    sentinel = object()
    bad = finite_problem([*table.values(), default])
    if bad:
        raise ArgError(f"value map: {bad}", "values")

    def mapped(value: Any) -> Any:
        if value is None:
            return None
        code = _code(value)
        out = table.get(code, sentinel) if code is not None else sentinel
        if out is not sentinel:
            return out
        if policy == "null":
            return None
        if policy == "default":
            return default
        if policy == "pass":
            return value
        raise TransformError(f"value {_short(value)} is not in the value map (known: {known})",
                             "unknown_value")

    if policy != "pass":  # only the map's own (checked) values or null come out
        mapped.finite_out = True  # type: ignore[attr-defined]
    return mapped


OnMissing = Literal["error", "null", "default", "pass"]


class TableArgError(ArgError):
    """A problem inside a lookup CSV: the error names the CSV file and line, then the mapping line."""

    def __init__(self, message: str, arg: str | None, file: str, line: int | None) -> None:
        super().__init__(message, arg)
        self.file = file
        self.line = line


def _table_error(exc: LookupTableError, arg: str) -> ArgError:
    if exc.file is None:
        return ArgError(str(exc), arg)
    return TableArgError(str(exc), arg, exc.file, exc.line)


class LookupArgs(Args):
    table: str = Field(min_length=1)
    key: str | None = None  # column holding the incoming code; default: the first column
    value: str | None = None  # column to return; default: the second column
    on_missing: OnMissing = "error"
    default: Any = None


@transform("lookup", args=LookupArgs, positional="table",
           summary="code table lookup in mappings/lookups/<table>.csv; on_missing: error|null|default|pass "
                   "(error rejects the record naming the table and the code)",
           example="lookup: {table: units, key: crm_unit, value: kingdee_unit}   '台' -> 'Set'")
def _lookup(args: LookupArgs, ctx: BuildContext) -> Fn:
    if args.on_missing == "default" and "default" not in args.model_fields_set:
        raise ArgError("on_missing: default needs a `default:` value", "on_missing")
    try:
        table = ctx.lookup_table(args.table)
    except LookupTableError as exc:
        raise _table_error(exc, "table") from None
    if len(table.columns) < 2 and (args.key is None or args.value is None):
        raise ArgError(f"lookup table {args.table!r} needs two columns", "table")
    key = args.key or table.columns[0]
    value_col = args.value or table.columns[1]
    for arg, column in (("key", key), ("value", value_col)):
        if column not in table.columns:
            raise ArgError(f"lookup table {args.table!r} has no column {column!r}; "
                           f"columns: {', '.join(table.columns)}", arg)
    try:
        index: Mapping[str, str | None] = table.index(key, value_col)
    except LookupTableError as exc:
        raise _table_error(exc, "key") from None
    name, policy, default = args.table, args.on_missing, args.default

    def look(value: Any) -> Any:
        if value is None:
            return None
        code = value if value.__class__ is str else _code(value)
        if code is not None:
            found = index.get(code)
            if found is not None:
                return found
        if policy == "null":
            return None
        if policy == "default":
            return default
        if policy == "pass":
            return value
        if code is not None and code in index:
            raise TransformError(f"code {_short(value)} has an empty {value_col!r} cell in lookup table {name}",
                                 "lookup_missing")
        raise TransformError(
            f"code {_short(value)} not found in lookup table {name} (column {key})", "lookup_missing"
        )

    if policy != "pass" and finite_problem(default) is None:  # CSV text, the default or null come out
        look.finite_out = True  # type: ignore[attr-defined]
    return look


class DefaultArgs(Args):
    value: Any


@transform("default", args=DefaultArgs, positional="value",
           summary="replace null or blank text with a value (anywhere in the chain)",
           example="default: 0   null -> 0")
def _default(args: DefaultArgs, ctx: BuildContext) -> Fn:
    fallback = args.value

    def default(value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return fallback
        return value

    return default
