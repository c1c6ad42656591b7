"""A small, safe parser for Kingdee's `FilterString` (a SQL WHERE fragment over field keys).

Supported: `=, <>, !=, >, >=, <, <=`, `[not] like`, `[not] in (...)`, `is [not] null`, `and`, `or`,
`not`, parentheses, single-quoted strings (`''` escapes a quote) and numbers, and the SQL function
`ISNULL(field, literal)` in place of a field (the real FilterString is SQL and accepts such functions;
vendor-gaps.md, Kingdee). Field keys may be dotted (`FCustId.FNumber`). Anything else — other
functions such as DATEDIFF among them — is a syntax error: nothing is ever evaluated as code.

Comparison follows SQL Server with its default case-insensitive Chinese collation: text compares
case-insensitively, NULL compares false, and a literal is converted to the field's type (a date
field compares as a datetime, a number field as a decimal).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

Kind = str  # "text" | "number" | "int" | "datetime" | "date" | "bool"


class FilterSyntaxError(ValueError):
    """The FilterString is not in the supported subset."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op><>|!=|>=|<=|=|>|<)
      | (?P<lp>\()
      | (?P<rp>\))
      | (?P<comma>,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "like", "in", "is", "null"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterSyntaxError(f"unexpected input at {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "word" and value.lower() in _KEYWORDS:
            kind = value.lower()
        tokens.append(Token(kind, value))
        pos = m.end()
    return tokens


# ---- AST ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: str
    literal: str | Decimal
    default: str | Decimal | None = None  # ISNULL(field, default)


@dataclass(frozen=True, slots=True)
class Like:
    field: str
    pattern: str
    negated: bool


@dataclass(frozen=True, slots=True)
class In:
    field: str
    literals: tuple[str | Decimal, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class IsNull:
    field: str
    negated: bool


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Compare | Like | In | IsNull | BoolOp | Not


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None) -> Token:
        tok = self.peek()
        if tok is None or (kind is not None and tok.kind != kind):
            want = kind or "a token"
            got = tok.text if tok else "end of filter"
            raise FilterSyntaxError(f"expected {want}, got {got!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek() is not None:
            raise FilterSyntaxError(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.peek() is not None and self.peek().kind == "or":  # type: ignore[union-attr]
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.peek() is not None and self.peek().kind == "and":  # type: ignore[union-attr]
            self.take()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def not_expr(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "not":
            self.take()
            return Not(self.not_expr())
        if tok is not None and tok.kind == "lp":
            self.take()
            node = self.or_expr()
            self.take("rp")
            return node
        return self.predicate()

    def literal(self) -> str | Decimal:
        tok = self.take()
        if tok.kind == "str":
            return tok.text[1:-1].replace("''", "'")
        if tok.kind == "num":
            return Decimal(tok.text)
        raise FilterSyntaxError(f"expected a quoted string or a number, got {tok.text!r}")

    def predicate(self) -> Node:
        field = self.take("word").text
        default: str | Decimal | None = None
        if field.lower() == "isnull" and self.peek() is not None and self.peek().kind == "lp":  # type: ignore[union-attr]
            self.take("lp")
            field = self.take("word").text
            self.take("comma")
            default = self.literal()
            self.take("rp")
            tok = self.take("op")
            return Compare(field, "<>" if tok.text == "!=" else tok.text, self.literal(), default)
        if self.peek() is not None and self.peek().kind == "lp":  # type: ignore[union-attr]
            raise FilterSyntaxError(f"unsupported function {field}(...)")
        tok = self.take()
        if tok.kind == "op":
            op = "<>" if tok.text == "!=" else tok.text
            return Compare(field, op, self.literal())
        negated = False
        if tok.kind == "not":
            negated = True
            tok = self.take()
        if tok.kind == "like":
            pattern = self.literal()
            if not isinstance(pattern, str):
                raise FilterSyntaxError("like needs a quoted pattern")
            return Like(field, pattern, negated)
        if tok.kind == "in":
            self.take("lp")
            values = [self.literal()]
            while self.peek() is not None and self.peek().kind == "comma":  # type: ignore[union-attr]
                self.take()
                values.append(self.literal())
            self.take("rp")
            return In(field, tuple(values), negated)
        if tok.kind == "is" and not negated:
            if self.peek() is not None and self.peek().kind == "not":  # type: ignore[union-attr]
                self.take()
                negated = True
            self.take("null")
            return IsNull(field, negated)
        raise FilterSyntaxError(f"unexpected {tok.text!r} after field {field}")


def parse_filter(text: str | None) -> Node | None:
    """Parse a FilterString; None or blank means no filter."""
    if text is None or not str(text).strip():
        return None
    return _Parser(tokenize(str(text))).parse()


def fields_of(node: Node | None) -> set[str]:
    """Every field key the filter mentions."""
    if node is None:
        return set()
    if isinstance(node, BoolOp):
        out: set[str] = set()
        for item in node.items:
            out |= fields_of(item)
        return out
    if isinstance(node, Not):
        return fields_of(node.item)
    return {node.field}


# ---- evaluation ---------------------------------------------------------------------------------

_DT_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@lru_cache(maxsize=4096)  # a filter's literal is coerced once per row evaluated: parse it once
def parse_datetime(text: str) -> datetime:
    """Kingdee accepts 'yyyy-MM-dd', 'yyyy-MM-dd HH:mm:ss[.fff]' and the same with a 'T'."""
    value = text.strip().replace("T", " ")
    for fmt in _DT_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise FilterSyntaxError(f"not a date: {text!r}")


def fold_text(text: str) -> str:
    """Text as the account set's SQL Server collation (Chinese_PRC_CI_AS) compares it with `=` and IN:
    case-insensitive, and trailing spaces ignored (SQL Server pads the shorter string with spaces
    before comparing, learn.microsoft.com/en-us/sql/t-sql/language-elements/equals-transact-sql
    and support.microsoft.com/kb/316626). LIKE is not padded: it matches the raw text."""
    return text.rstrip(" ").casefold()


def _coerce(literal: str | Decimal, kind: Kind) -> Any:
    if kind in ("datetime", "date"):
        return parse_datetime(str(literal))
    if kind in ("number", "int"):
        try:
            return Decimal(str(literal))
        except InvalidOperation:
            raise FilterSyntaxError(f"not a number: {literal!r}") from None
    if kind == "bool":
        return str(literal).strip().lower() in ("1", "true")
    return fold_text(str(literal))


def _normalise(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if kind in ("number", "int"):
        return Decimal(str(value))
    if kind in ("datetime", "date"):
        return value if isinstance(value, datetime) else parse_datetime(str(value))
    if kind == "bool":
        return bool(value)
    return fold_text(str(value))


def _like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                neg = body.startswith("^")
                body = body[1:] if neg else body
                out.append("[" + ("^" if neg else "") + re.escape(body).replace("\\-", "-") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


Resolver = Callable[[str], tuple[Any, Kind]]


def evaluate(node: Node | None, resolve: Resolver) -> bool:
    """True when the row described by `resolve(field) -> (value, kind)` passes the filter."""
    if node is None:
        return True
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(evaluate(item, resolve) for item in node.items)
        return any(evaluate(item, resolve) for item in node.items)
    if isinstance(node, Not):
        return not evaluate(node.item, resolve)
    raw, kind = resolve(node.field)
    if isinstance(node, Compare) and node.default is not None and raw is None:
        value = _coerce(node.default, kind)  # SQL ISNULL(field, default): the default stands in for NULL
    else:
        value = _normalise(raw, kind)
    if isinstance(node, IsNull):
        is_null = value is None or value == ""
        return is_null != node.negated
    if value is None:
        return False  # SQL: NULL compares unknown, which filters the row out
    if isinstance(node, Compare):
        other = _coerce(node.literal, kind)
        return {
            "=": value == other,
            "<>": value != other,
            ">": value > other,
            ">=": value >= other,
            "<": value < other,
            "<=": value <= other,
        }[node.op]
    if isinstance(node, Like):
        matched = _like_regex(node.pattern).fullmatch(str(raw)) is not None
        return matched != node.negated
    if isinstance(node, In):
        found = any(value == _coerce(lit, kind) for lit in node.literals)
        return found != node.negated
    raise FilterSyntaxError(f"unsupported node {node!r}")
