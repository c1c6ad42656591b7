"""A small, safe expression language for mapping fields, parsed once into closures (no `eval`).

    expr: "round(qty * price / (1 + tax_rate / 100), 2)"
    expr: "if currency == 'USD' then amount * ${param:usd_rate} else amount"
    expr: "add_days(date(order_date), 30)"
    expr: "upper(trim(code)) & '-' & target.FBillNo"

Grammar (lowest precedence first):
    if C then A else B  |  a or b  |  a and b  |  not a  |  a == b, !=, <, <=, >, >=
    a & b (text concatenation)  |  a + b, a - b  |  a * b, a / b, a % b  |  -a  |  f(x, ...)
    literals: 12, 12.5, 'text' or "text", true, false, null, [a, b] (a list), ${param:NAME}
    references: qty, customer.contact.phone, lines[0].sku, lines[*].amount (a source path, relative
    to the child line inside `each`), $.order_no (the whole record), target.FBillNo (a field this
    mapping already wrote, earlier in the file, in the same record or line), and `let:` names.

Numbers are exact Decimals (numeric text such as "12.50" or "1,234.5" is read by numbers.py; other
text in arithmetic is an error). Arithmetic with null gives null. A comparison that cannot be
evaluated (null or text with a number) and a condition that is not true/false reject the record
naming the field, as filters do. Nothing here can reach Python: names are looked up in the
function table at compile time, and an unknown name is a compile error with file:line:column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from typing import Any, Protocol

from erphub.core.errors import MappingPartError, TransformError
from erphub.mappings import timefmt
from erphub.mappings.lookups import LookupTable, LookupTableError
from erphub.mappings.numbers import EXACT, DecimalMark, exact, kind, no_negative_zero, plain, show, to_decimal
from erphub.mappings.paths import PathSyntaxError, compile_getter, parse_path

Eval = Callable[[Any, Any, Any], Any]  # (scope, root, out) -> value

# + - * and % are exact or an error (never silently rounded to 28 digits); / keeps 34 significant
# digits (a quotient such as 1/3 has no exact form) and is normally followed by round().
_EXACT = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
_DIVIDE = Context(prec=34, traps=[InvalidOperation, DivisionByZero, Overflow])


class ExprError(MappingPartError):
    """A malformed expression; `offset` is the character position inside the expression text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class ExprContext(Protocol):
    decimal_mark: DecimalMark

    def lookup_table(self, name: str) -> LookupTable: ...

    def param(self, name: str) -> str | None: ...

    def let(self, name: str) -> Eval | None: ...

    def check_source(self, path_text: str, offset: int) -> None: ...


# --- tokens ----------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<param>\$\{param:(?P<pname>[A-Za-z_][\w.-]*)\})
  | (?P<root>\$\.)
  | (?P<name>[^\W\d]\w*)
  | (?P<op>==|!=|<=|>=|[<>+\-*/%&()\[\],.])
""", re.VERBOSE)
KEYWORDS = {"if", "then", "else", "and", "or", "not", "true", "false", "null"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # num, str, param, root, name, op, kw, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError(f"unexpected character {text[pos]!r}", pos)
        kind_ = m.lastgroup or ""
        if kind_ == "pname":
            kind_ = "param"
        if kind_ != "ws":
            value = m.group("pname") if kind_ == "param" else m.group(0)
            if kind_ == "name" and value in KEYWORDS:
                kind_ = "kw"
            out.append(Token(kind_, value, pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


# --- values ------------------------------------------------------------------------------------------

def _num(value: Any, mark: DecimalMark, what: str) -> Decimal:
    cls = value.__class__
    if cls is Decimal and value.is_finite():
        return value
    if cls is int:
        return Decimal(value)
    try:
        return to_decimal(value, mark)
    except TransformError:
        raise TransformError(f"{what}: {show(value)} is not a number") from None


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    raise TransformError(f"{what} is {kind(value)} {show(value)}, not true or false")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _equal(a: Any, b: Any, mark: DecimalMark) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) or _is_number(b):
        try:
            return to_decimal(a, mark) == to_decimal(b, mark)
        except TransformError:
            return False  # a number never equals text that is not a number
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, datetime | date) and isinstance(b, str):
        return a.isoformat() == b
    return bool(a == b)


def _order(a: Any, b: Any, mark: DecimalMark, what: str) -> tuple[Any, Any]:
    if a is None or b is None:
        raise TransformError(f"{what} cannot be evaluated: a side is null")
    if _is_number(a) or _is_number(b):
        return _num(a, mark, what), _num(b, mark, what)
    if isinstance(a, date) or isinstance(b, date):
        return _as_date(a, what), _as_date(b, what)
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    raise TransformError(f"{what} cannot compare {kind(a)} with {kind(b)}")


_DATE_PARSERS = (timefmt.make_parser("iso8601", None), timefmt.make_parser("kingdee", None))


def _as_date(value: Any, what: str = "date") -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        for parse in _DATE_PARSERS:
            try:
                moment = parse(value)
            except ValueError:
                continue
            return moment.date() if isinstance(moment, datetime) else moment
    raise TransformError(f"{what}: {show(value)} is not a date")


# --- functions -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Function:
    name: str
    arity: tuple[int, int | None]  # min, max (None: any number)
    summary: str
    example: str
    impl: Callable[..., Any] | None = None  # plain values -> value (null-safe where it says so)
    build: Callable[[list[Node], ExprContext, int], Eval] | None = None  # needs compile-time arguments


FUNCTIONS: dict[str, Function] = {}


def function(name: str, lo: int, hi: int | None, summary: str, example: str) -> Callable[[Any], Any]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = Function(name, (lo, hi), summary, example, impl=fn)
        return fn
    return register


def builder(name: str, lo: int, hi: int | None, summary: str, example: str) -> Callable[[Any], Any]:
    def register(fn: Callable[[list[Node], ExprContext, int], Eval]) -> Callable[..., Any]:
        FUNCTIONS[name] = Function(name, (lo, hi), summary, example, build=fn)
        return fn
    return register


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, int | float):
        return plain(to_decimal(value))
    if isinstance(value, date):
        return value.isoformat()
    raise TransformError(f"{what} expects text, got {kind(value)}")


def _null_safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(first: Any, *rest: Any) -> Any:
        return None if first is None else fn(first, *rest)
    wrapped.__name__ = fn.__name__
    return wrapped


def _text_method(method: Callable[[str], str], name: str) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        if value.__class__ is str:
            return method(value)
        return None if value is None else method(_text(value, name))
    return apply


function("upper", 1, 1, "upper-case text", "upper('cus-1') -> 'CUS-1'")(_text_method(str.upper, "upper"))
function("lower", 1, 1, "lower-case text", "lower('A@B.CN') -> 'a@b.cn'")(_text_method(str.lower, "lower"))
function("trim", 1, 1, "strip surrounding whitespace", "trim('  a ') -> 'a'")(_text_method(str.strip, "trim"))
function("len", 1, 1, "length of a text or list", "len('深圳') -> 2")(
    _null_safe(lambda s: Decimal(len(s if isinstance(s, list) else _text(s, "len")))))
function("text", 1, 1, "a value as text (numbers plain, dates ISO)", "text(12.50) -> '12.50'")(
    _null_safe(lambda s: _text(s, "text")))


@function("concat", 1, None, "join values as text, skipping nulls", "concat(city, ' ', street)")
def _concat(*values: Any) -> Any:
    return "".join(_text(v, "concat") for v in values if v is not None)


def _substr(s: Any, start: Any, length: Any = None) -> Any:
    if s is None:
        return None
    text = _text(s, "substr")
    a = int(_num(start, "point", "substr start"))
    return text[a:] if length is None else text[a: a + int(_num(length, "point", "substr length"))]


@builder("substr", 2, 3, "part of a text: substr(text, start (0-based), length?)", "substr('SO-17', 3) -> '17'")
def _substr_builder(args: list[Node], ctx: ExprContext, pos: int) -> Eval:
    if all(a.is_const for a in args[1:]):  # the usual `substr(x, 0, 40)`: bounds fixed once
        start = _const_int(args[1], "start", 0, 1_000_000)
        stop = start + _const_int(args[2], "length", 0, 1_000_000) if len(args) > 2 else None
        text_fn = args[0].fn

        def fixed(s_: Any, r: Any, o: Any) -> Any:
            v = text_fn(s_, r, o)
            if v.__class__ is str:
                return v[start:stop]
            return None if v is None else _text(v, "substr")[start:stop]
        return _finite(fixed)
    fns = [a.fn for a in args]
    return lambda s_, r, o: _substr(*[f(s_, r, o) for f in fns])


@function("replace", 3, 3, "replace every occurrence", "replace(phone, '-', '') -> '1380000'")
def _replace(s: Any, old: Any, new: Any) -> Any:
    return None if s is None else _text(s, "replace").replace(_text(old, "replace"), _text(new, "replace"))


@function("pad_left", 2, 3, "pad text on the left to a width", "pad_left(7, 4, '0') -> '0007'")
def _pad_left(s: Any, width: Any, fill: Any = " ") -> Any:
    if s is None:
        return None
    ch = _text(fill, "pad_left")
    if len(ch) != 1:
        raise TransformError("pad_left fills with exactly one character")
    return _text(s, "pad_left").rjust(int(_num(width, "point", "pad_left width")), ch)


@function("contains", 2, 2, "does the text contain the part", "contains(remark, '急') -> true")
def _contains(s: Any, part: Any) -> Any:
    return False if s is None else _text(part, "contains") in _text(s, "contains")


@function("starts_with", 2, 2, "does the text start with the prefix", "starts_with(code, 'C') -> true")
def _starts_with(s: Any, prefix: Any) -> Any:
    return False if s is None else _text(s, "starts_with").startswith(_text(prefix, "starts_with"))


@builder("coalesce", 1, None, "the first value that is not null or blank (the rest are not evaluated)",
         "coalesce(short_name, name)")
def _coalesce(args: list[Node], ctx: ExprContext, pos: int) -> Eval:
    fns = tuple((a.key, a.fn) for a in args)

    def coalesce(s: Any, r: Any, o: Any) -> Any:
        for key, f in fns:
            v = s.get(key) if key is not None and s.__class__ is dict else f(s, r, o)
            if v is None or v == []:
                continue
            if v.__class__ is str and not v.strip():
                continue
            return v
        return None
    return coalesce


@function("abs", 1, 1, "absolute value", "abs(-2.5) -> 2.5")
def _abs(x: Any) -> Any:
    return None if x is None else abs(_num(x, "point", "abs"))


@function("number", 1, 1, "text -> exact number (by the grammar of numbers)", "number('1,234.5') -> 1234.5")
def _number(x: Any) -> Any:
    return None if x is None else _num(x, "point", "number")


@builder("round", 1, 3, "round(x, places=0, mode='half_up'): exact decimal rounding; mode one of "
         "half_up, half_even, half_down, down, up, floor, ceiling", "round(2.345, 2) -> 2.35")
def _round(args: list[Node], ctx: ExprContext, pos: int) -> Eval:
    from erphub.mappings.transforms import ROUNDING

    value = args[0].fn
    places = _const_int(args[1], "places", 0, 12) if len(args) > 1 else 0
    mode_name = _const_text(args[2], "mode") if len(args) > 2 else "half_up"
    if mode_name not in ROUNDING:
        raise ExprError(f"unknown rounding mode {mode_name!r}; use one of {', '.join(ROUNDING)}", args[2].pos)
    mode, exp, mark = ROUNDING[mode_name], Decimal(1).scaleb(-places), ctx.decimal_mark

    def rnd(scope: Any, root: Any, out: Any) -> Any:
        v = value(scope, root, out)
        if v is None:
            return None
        try:
            q = _num(v, mark, "round").quantize(exp, rounding=mode, context=_DIVIDE)
        except InvalidOperation:
            raise TransformError(f"round: {show(v)} is too large to round to {places} places") from None
        return q if q or not q.is_signed() else q.copy_abs()
    return _finite(rnd)


@builder("money", 2, 2, "money(amount, currency): rounds to the currency's minor unit (half_up); the "
         "currency can come from a field", "money(amount, currency) -> 12.35 for 'USD', 12 for 'JPY'")
def _money(args: list[Node], ctx: ExprContext, pos: int) -> Eval:
    from erphub.mappings.transforms import CURRENCY_PLACES

    amount, currency, mark = args[0].fn, args[1].fn, ctx.decimal_mark

    def money(scope: Any, root: Any, out: Any) -> Any:
        v = amount(scope, root, out)
        if v is None:
            return None
        cur = currency(scope, root, out)
        code = cur.strip().upper() if isinstance(cur, str) else None
        if code not in CURRENCY_PLACES:
            raise TransformError(f"money: unknown currency {show(cur)}; known: {', '.join(sorted(CURRENCY_PLACES))}")
        exp = Decimal(1).scaleb(-CURRENCY_PLACES[code])
        try:
            return no_negative_zero(_num(v, mark, "money").quantize(exp, rounding=ROUND_HALF_UP, context=_DIVIDE))
        except InvalidOperation:
            raise TransformError(f"money: {show(v)} is too large") from None
    return _finite(money)


def _const_int(node: Node, what: str, lo: int, hi: int) -> int:
    if not isinstance(node.const, Decimal) or node.const != node.const.to_integral_value() \
            or not lo <= node.const <= hi:
        raise ExprError(f"{what} must be a whole number from {lo} to {hi}", node.pos)
    return int(node.const)


def _const_text(node: Node, what: str) -> str:
    if not isinstance(node.const, str):
        raise ExprError(f"{what} must be a text literal such as 'half_up'", node.pos)
    return node.const


# dates
function("date", 1, 1, "a date from ISO or Kingdee text, a date or a datetime (its own calendar date)",
         "date('2026-03-02 10:00:00') -> 2026-03-02")(_null_safe(lambda v: _as_date(v)))


@function("add_days", 2, 2, "date plus N days (N may be negative)", "add_days(date(order_date), 30)")
def _add_days(d: Any, n: Any) -> Any:
    if d is None or n is None:
        return None
    count = _num(n, "point", "add_days")
    if count != count.to_integral_value():
        raise TransformError(f"add_days: {show(n)} is not a whole number of days")
    try:
        return _as_date(d, "add_days") + timedelta(days=int(count))
    except OverflowError:
        raise TransformError("add_days: the date is out of range") from None


@function("add_months", 2, 2, "date plus N calendar months (the 31st becomes the month's last day)",
          "add_months(date('2026-01-31'), 1) -> 2026-02-28")
def _add_months(d: Any, n: Any) -> Any:
    if d is None or n is None:
        return None
    day = _as_date(d, "add_months")
    count = int(_num(n, "point", "add_months"))
    months = day.year * 12 + day.month - 1 + count
    year, month = divmod(months, 12)
    if not 1 <= year <= 9999:
        raise TransformError("add_months: the date is out of range")
    import calendar

    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@function("days_between", 2, 2, "whole days from the first date to the second", "days_between(a, b) -> 30")
def _days_between(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    return Decimal((_as_date(b, "days_between") - _as_date(a, "days_between")).days)


@function("format_date", 2, 2, "a date as text with a %-pattern", "format_date(date(d), '%Y/%m/%d')")
def _format_date(d: Any, pattern: Any) -> Any:
    return None if d is None else _as_date(d, "format_date").strftime(_text(pattern, "format_date"))


# lists
def _items(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TransformError(f"{what} expects a list (a path with [*]), got {kind(value)}")
    return value


def _numbers(value: Any, what: str) -> list[Decimal]:
    out = []
    for i, item in enumerate(_items(value, what)):
        if item is None or item == "":
            raise TransformError(f"{what}: item {i} of the list is empty")
        out.append(_num(item, "point", what))
    return out


@function("sum", 1, 1, "sum of a list of numbers; an empty item is refused", "sum(lines[*].amount)")
def _sum(value: Any) -> Any:
    total = Decimal(0)
    for item in _numbers(value, "sum"):
        total = exact(EXACT.add, total, item)
    return total


@function("min", 1, None, "smallest number: min(list) or min(a, b, ...)", "min(lines[*].price)")
def _min(*values: Any) -> Any:
    nums = _numbers(values[0], "min") if len(values) == 1 else _numbers(list(values), "min")
    return min(nums) if nums else None


@function("max", 1, None, "largest number: max(list) or max(a, b, ...)", "max(lines[*].price)")
def _max(*values: Any) -> Any:
    nums = _numbers(values[0], "max") if len(values) == 1 else _numbers(list(values), "max")
    return max(nums) if nums else None


@function("count", 1, 1, "number of items of a list (0 for null)", "count(lines) -> 3")
def _count(value: Any) -> Any:
    return Decimal(len(_items(value, "count")))


@function("distinct", 1, 1, "the list without repeated items, in first-seen order", "distinct(lines[*].sku)")
def _distinct(value: Any) -> Any:
    out: list[Any] = []
    seen: set[str] = set()
    for item in _items(value, "distinct"):
        key = show(item, 10_000) if not isinstance(item, dict | list) else repr(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


@function("join", 2, 2, "list -> text with a separator, skipping nulls", "join(lines[*].sku, ',')")
def _join(value: Any, sep: Any) -> Any:
    return _text(sep, "join").join(_text(v, "join") for v in _items(value, "join") if v is not None)


@function("group_sum", 3, 3, "group_sum(lines, key_field, amount_field): one {key, sum} per distinct key, "
          "in first-seen order", "group_sum(lines, 'tax_rate', 'amount') -> [{key: 13, sum: 30.00}]")
def _group_sum(value: Any, key_field: Any, amount_field: Any) -> Any:
    kf, af = _text(key_field, "group_sum"), _text(amount_field, "group_sum")
    groups: dict[str, dict[str, Any]] = {}
    for i, line in enumerate(_items(value, "group_sum")):
        if not isinstance(line, dict):
            raise TransformError(f"group_sum: item {i} is not an object")
        key = line.get(kf)
        amount = line.get(af)
        if amount is None or amount == "":
            raise TransformError(f"group_sum: item {i} has no {af!r}")
        slot = groups.setdefault(show(key, 10_000), {"key": key, "sum": Decimal(0)})
        slot["sum"] = exact(EXACT.add, slot["sum"], _num(amount, "point", "group_sum"))
    return list(groups.values())


@builder("lookup", 3, None, "lookup(table, value_column(s), key_column, key, [key_column2, key2, ...]): a code "
         "table row by one or more key columns; value_column a text, or a list of texts for an object; "
         "no row is an error naming the table and the key",
         "lookup('material_codes', 'kingdee_number', 'crm_sku', sku)")
def _lookup(args: list[Node], ctx: ExprContext, pos: int) -> Eval:
    return _table_lookup(args, ctx, pos, dated=False)


@builder("lookup_asof", 4, None, "lookup_asof(table, value_column(s), date, key_column, key, ...): like lookup, "
         "among the rows whose valid_from <= date and (valid_to empty or date < valid_to)",
         "lookup_asof('prices', 'price', date(order_date), 'sku', sku)")
def _lookup_asof(args: list[Node], ctx: ExprContext, pos: int) -> Eval:
    return _table_lookup(args, ctx, pos, dated=True)


def _table_lookup(args: list[Node], ctx: ExprContext, pos: int, *, dated: bool) -> Eval:
    name = _const_text(args[0], "the table")
    try:
        table = ctx.lookup_table(name)
    except LookupTableError as exc:
        raise ExprError(str(exc), args[0].pos) from None
    wanted = args[1].const
    columns = [wanted] if isinstance(wanted, str) else wanted
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise ExprError("the value column is a text literal or a list of them", args[1].pos)
    rest = args[3:] if dated else args[2:]
    if len(rest) % 2 or not rest:
        raise ExprError("give key columns and keys in pairs: 'column', value, ...", pos)
    key_columns = [_const_text(rest[i], "a key column") for i in range(0, len(rest), 2)]
    key_fns = [rest[i].fn for i in range(1, len(rest), 2)]
    needed = [*columns, *key_columns, *(("valid_from", "valid_to") if dated else ())]
    for col in needed:
        if col not in table.columns:
            raise ExprError(f"lookup table {name!r} has no column {col!r}; columns: {', '.join(table.columns)}",
                            args[1].pos if col in columns else pos)
    index: dict[tuple[str, ...], list[tuple[int, dict[str, str]]]] = {}
    for line, row in table.rows:
        index.setdefault(tuple(row[c] for c in key_columns), []).append((line, row))
    if not dated:
        for key, rows in index.items():
            if len(rows) > 1:
                raise ExprError(f"lookup table {name!r} has the key {key} twice (lines {rows[0][0]} and "
                                f"{rows[1][0]}); a lookup must have one answer", pos)
    as_of = args[2].fn if dated else None
    single = isinstance(wanted, str)

    def look(scope: Any, root: Any, out: Any) -> Any:
        key = []
        for fn in key_fns:
            v = fn(scope, root, out)
            if v is None:
                return None
            key.append(_text(v, "lookup key"))
        rows = index.get(tuple(key), [])
        if as_of is not None:
            day = _as_date(as_of(scope, root, out), "lookup_asof date").isoformat()
            rows = [(ln, r) for ln, r in rows if r["valid_from"] <= day and (not r["valid_to"] or day < r["valid_to"])]
            if len(rows) > 1:
                raise TransformError(f"lookup table {name} has {len(rows)} rows valid on {day} for "
                                     f"{', '.join(key)} (lines {rows[0][0]} and {rows[1][0]})", "lookup_missing")
        if not rows:
            when = f" valid on {day}" if as_of is not None else ""
            raise TransformError(f"no row in lookup table {name} for {', '.join(key_columns)} = "
                                 f"{', '.join(map(show, key))}{when}", "lookup_missing")
        row = rows[0][1]
        values = {c: (row[c] or None) for c in columns}
        missing = [c for c, v in values.items() if v is None]
        if missing:
            raise TransformError(f"lookup table {name} has an empty {missing[0]!r} cell for "
                                 f"{', '.join(map(show, key))}", "lookup_missing")
        return values[columns[0]] if single else values
    return look


# --- parser ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Node:
    fn: Eval
    pos: int
    const: Any = None  # the value of a literal (for arguments read at compile time)
    is_const: bool = False
    key: str | None = None  # a one-key source path: callers may read it with scope.get(key) directly


class _Parser:
    def __init__(self, text: str, ctx: ExprContext) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.ctx = ctx
        self.mark = ctx.decimal_mark

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def at(self, kind_: str, text: str | None = None) -> bool:
        t = self.tok
        return t.kind == kind_ and (text is None or t.text == text)

    def expect(self, kind_: str, text: str) -> Token:
        if not self.at(kind_, text):
            got = "the end" if self.tok.kind == "end" else repr(self.tok.text)
            raise ExprError(f"expected {text!r}, found {got}", self.tok.pos)
        return self.take()

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExprError("empty expression", 0)
        node = self.expr()
        if self.tok.kind != "end":
            raise ExprError(f"unexpected {self.tok.text!r}", self.tok.pos)
        return node

    def expr(self) -> Node:
        if self.at("kw", "if"):
            start = self.take().pos
            cond, then = self.expr(), None
            self.expect("kw", "then")
            then = self.expr()
            self.expect("kw", "else")
            other = self.expr()
            what = f"the condition of `if` at position {start + 1}"
            c, a, b = cond.fn, then.fn, other.fn

            def choose(s: Any, r: Any, o: Any) -> Any:
                return a(s, r, o) if _bool(c(s, r, o), what) else b(s, r, o)
            return Node(choose, start)
        return self.or_()

    def or_(self) -> Node:
        left = self.and_()
        while self.at("kw", "or"):
            pos = self.take().pos
            right = self.and_()
            left = Node(_either(left.fn, right.fn, f"`or` at position {pos + 1}"), left.pos)
        return left

    def and_(self) -> Node:
        left = self.not_()
        while self.at("kw", "and"):
            pos = self.take().pos
            right = self.not_()
            left = Node(_both(left.fn, right.fn, f"`and` at position {pos + 1}"), left.pos)
        return left

    def not_(self) -> Node:
        if self.at("kw", "not"):
            pos = self.take().pos
            inner = self.not_().fn
            what = f"`not` at position {pos + 1}"
            return Node(lambda s, r, o: not _bool(inner(s, r, o), what), pos)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.concat()
        if self.tok.kind == "op" and self.tok.text in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take()
            right = self.concat()
            lf, rf, mark = left.fn, right.fn, self.mark
            what = f"the comparison `{self.text[left.pos:self.tok.pos].strip()}`"
            if op.text == "==":
                return Node(lambda s, r, o: _equal(lf(s, r, o), rf(s, r, o), mark), left.pos)
            if op.text == "!=":
                return Node(lambda s, r, o: not _equal(lf(s, r, o), rf(s, r, o), mark), left.pos)
            test = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
                    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op.text]

            def ordered(s: Any, r: Any, o: Any) -> Any:
                a, b = _order(lf(s, r, o), rf(s, r, o), mark, what)
                return test(a, b)
            return Node(ordered, left.pos)
        return left

    def concat(self) -> Node:
        left = self.additive()
        while self.at("op", "&"):
            self.take()
            right = self.additive()
            lf, rf = left.fn, right.fn

            def cat(s: Any, r: Any, o: Any, lf: Eval = lf, rf: Eval = rf) -> Any:
                a, b = lf(s, r, o), rf(s, r, o)
                return ("" if a is None else _text(a, "&")) + ("" if b is None else _text(b, "&"))
            left = Node(_finite(cat), left.pos)
        return left

    def additive(self) -> Node:
        left = self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take()
            right = self.term()
            left = self._arith(op, left, right)
        return left

    def term(self) -> Node:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/", "%"):
            op = self.take()
            right = self.unary()
            left = self._arith(op, left, right)
        return left

    def _arith(self, op: Token, left: Node, right: Node) -> Node:
        lf, rf, mark, sym = left.fn, right.fn, self.mark, op.text
        what = f"`{sym}` at position {op.pos + 1}"
        calc = {"+": _EXACT.add, "-": _EXACT.subtract, "*": _EXACT.multiply,
                "/": _DIVIDE.divide, "%": _EXACT.remainder}[sym]

        def arith(s: Any, r: Any, o: Any) -> Any:
            a, b = lf(s, r, o), rf(s, r, o)
            if a is None or b is None:
                return None
            x = a if a.__class__ is Decimal and a.is_finite() else _num(a, mark, what)
            y = b if b.__class__ is Decimal and b.is_finite() else _num(b, mark, what)
            if sym in ("/", "%") and not y:
                raise TransformError(f"division by zero at {what}")
            try:
                return no_negative_zero(calc(x, y))
            except Inexact:
                raise TransformError(f"{what}: the exact result of {show(x)} {sym} {show(y)} has more than "
                                     f"{_EXACT.prec} digits") from None
            except (InvalidOperation, DivisionByZero, Overflow):
                raise TransformError(f"cannot compute {what} with {show(x)} and {show(y)}") from None
        if left.is_const and right.is_const:  # fold constants once: `1 + 13 / 100`
            try:
                value = arith(None, None, None)
            except TransformError as exc:
                raise ExprError(str(exc), op.pos) from None
            return Node(lambda s, r, o: value, left.pos, value, True)
        return Node(_finite(arith), left.pos)

    def unary(self) -> Node:
        if self.at("op", "-"):
            pos = self.take().pos
            inner = self.unary()
            f, mark = inner.fn, self.mark
            if inner.is_const and isinstance(inner.const, Decimal):
                value = no_negative_zero(-inner.const)
                return Node(lambda s, r, o: value, pos, value, True)
            return Node(lambda s, r, o: None if (v := f(s, r, o)) is None
                        else no_negative_zero(-_num(v, mark, "unary -")), pos)
        return self.primary()

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.take()
            return self._const(Decimal(t.text), t.pos)
        if t.kind == "str":
            self.take()
            return self._const(_unquote(t.text), t.pos)
        if t.kind == "param":
            self.take()
            value = self.ctx.param(t.text)
            if value is None:
                raise ExprError(f"unknown parameter {t.text!r}: declare it under `params:` in the mapping "
                                f"or the pipeline", t.pos)
            return self._const(value, t.pos)
        if t.kind == "kw" and t.text in ("true", "false", "null"):
            self.take()
            return self._const({"true": True, "false": False, "null": None}[t.text], t.pos)
        if t.kind == "op" and t.text == "(":
            self.take()
            inner = self.expr()
            self.expect("op", ")")
            return inner
        if t.kind == "op" and t.text == "[":
            return self._list()
        if t.kind == "root":
            self.take()
            return self._reference("$.", t.pos)
        if t.kind == "name":
            if self.tokens[self.i + 1].kind == "op" and self.tokens[self.i + 1].text == "(":
                return self._call()
            return self._reference("", t.pos)
        got = "the end of the expression" if t.kind == "end" else repr(t.text)
        raise ExprError(f"expected a value, found {got}", t.pos)

    def _const(self, value: Any, pos: int) -> Node:
        return Node(lambda s, r, o: value, pos, value, True)

    def _list(self) -> Node:
        start = self.take().pos
        items: list[Node] = []
        while not self.at("op", "]"):
            items.append(self.expr())
            if not self.at("op", "]"):
                self.expect("op", ",")
        self.take()
        if all(n.is_const for n in items):
            values = [n.const for n in items]
            return Node(lambda s, r, o: list(values), start, values, True)
        fns = [n.fn for n in items]
        return Node(lambda s, r, o: [f(s, r, o) for f in fns], start)

    def _call(self) -> Node:
        name_tok = self.take()
        fdef = FUNCTIONS.get(name_tok.text)
        if fdef is None:
            import difflib

            close = difflib.get_close_matches(name_tok.text, list(FUNCTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ExprError(f"unknown function {name_tok.text!r}{hint} (see `erphub mapping transforms`)",
                            name_tok.pos)
        self.expect("op", "(")
        args: list[Node] = []
        while not self.at("op", ")"):
            args.append(self.expr())
            if not self.at("op", ")"):
                self.expect("op", ",")
        self.take()
        lo, hi = fdef.arity
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
            raise ExprError(f"{fdef.name}() takes {want} argument(s), got {len(args)}", name_tok.pos)
        if fdef.build is not None:
            return Node(fdef.build(args, self.ctx, name_tok.pos), name_tok.pos)
        impl, fns = fdef.impl, [a.fn for a in args]
        assert impl is not None
        call: Eval
        if len(fns) == 1:
            only = fns[0]
            call = lambda s, r, o: impl(only(s, r, o))  # noqa: E731
        elif len(fns) == 2:
            f0, f1 = fns
            call = lambda s, r, o: impl(f0(s, r, o), f1(s, r, o))  # noqa: E731
        else:
            call = lambda s, r, o: impl(*[f(s, r, o) for f in fns])  # noqa: E731
        if fdef.name in FINITE_RESULTS:
            call = _finite(call, may_be_date=fdef.name in DATE_RESULTS)
        return Node(call, name_tok.pos)

    def _reference(self, prefix: str, pos: int) -> Node:
        first = self.tok
        if first.kind != "name":
            raise ExprError("expected a field name after '$.'", first.pos)
        self.take()
        parts = [prefix + first.text]
        while True:
            if self.at("op", ".") and self.tokens[self.i + 1].kind in ("name", "kw"):
                self.take()
                parts.append("." + self.take().text)
            elif self.at("op", "["):
                self.take()
                inner = self.take()
                if inner.kind == "op" and inner.text == "*":
                    parts.append("[*]")
                elif inner.kind == "num" and inner.text.isdigit():
                    parts.append(f"[{inner.text}]")
                elif inner.kind == "op" and inner.text == "-" and self.tok.kind == "num":
                    parts.append(f"[-{self.take().text}]")
                elif inner.kind == "str":
                    parts.append(f"[{inner.text}]")
                else:
                    raise ExprError("an index is a whole number, * or a quoted key", inner.pos)
                self.expect("op", "]")
            else:
                break
        text = "".join(parts)
        head = text.split(".")[0].split("[")[0]
        if not prefix:
            let = self.ctx.let(text)
            if let is not None:
                return Node(let, pos)
            if head == "target" and "." in text:
                return Node(self._target(text[len("target."):], pos), pos)
        try:
            path = parse_path(text)
        except PathSyntaxError as exc:
            raise ExprError(str(exc), pos) from None
        self.ctx.check_source(text, pos)
        get = compile_getter(path)
        if not path.from_root and len(path.steps) == 1 and isinstance(path.steps[0], str):
            key = path.steps[0]
            return Node(lambda s, r, o: s.get(key) if s.__class__ is dict else get(s, r), pos, key=key)
        return Node(lambda s, r, o: get(s, r), pos)

    def _target(self, text: str, pos: int) -> Eval:
        try:
            path = parse_path(text)
        except PathSyntaxError as exc:
            raise ExprError(str(exc), pos) from None
        get = compile_getter(path)
        return lambda s, r, o: get(o, o)


# Functions whose result is text, a boolean, a finite number, a date or null, never a value passed
# through from the record: a field computed by one needs no NaN check per record.
FINITE_RESULTS = {"upper", "lower", "trim", "len", "text", "concat", "replace", "pad_left", "contains",
                  "starts_with", "abs", "number", "date", "add_days", "add_months", "days_between",
                  "format_date", "sum", "min", "max", "count", "join"}


DATE_RESULTS = {"date", "add_days", "add_months"}


def _finite(fn: Eval, *, may_be_date: bool = False) -> Eval:
    fn.finite_out = True  # type: ignore[attr-defined]
    fn.no_date = not may_be_date  # type: ignore[attr-defined]  # a field need not turn a date into text
    return fn


def _either(lf: Eval, rf: Eval, what: str) -> Eval:
    return lambda s, r, o: _bool(lf(s, r, o), what) or _bool(rf(s, r, o), what)


def _both(lf: Eval, rf: Eval, what: str) -> Eval:
    return lambda s, r, o: _bool(lf(s, r, o), what) and _bool(rf(s, r, o), what)


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def compile_expression(text: str, ctx: ExprContext) -> Eval:
    """`text -> (scope, root, out) -> value`; raises ExprError with the offset of the problem."""
    if not isinstance(text, str):
        raise ExprError("an expression is a text", 0)
    if len(text) > 10_000:
        raise ExprError("expression is longer than 10,000 characters", 0)
    try:
        return _Parser(text, ctx).parse().fn
    except RecursionError:
        raise ExprError("expression is nested too deeply", 0) from None


def describe_functions() -> Sequence[Function]:
    return [FUNCTIONS[name] for name in sorted(FUNCTIONS)]


__all__ = ["FUNCTIONS", "Eval", "ExprContext", "ExprError", "compile_expression", "describe_functions"]
