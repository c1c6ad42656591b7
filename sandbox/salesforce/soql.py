"""A small SOQL subset: enough for incremental reads, lookups and simple-salesforce.

    SELECT f [, f ...] FROM Object
        [WHERE cond]            cond: a AND b, a OR b, NOT a, (a), field op literal,
                                      field [NOT] IN (literal, ...), field LIKE 'pattern'
        [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST] [, ...]]
        [LIMIT n] [OFFSET n]

Fields may be one-level parent relationships (`Account.CRM_Code__c`). Literals: 'strings' with
backslash escapes, numbers, TRUE/FALSE/NULL, dates `2024-01-01` and datetimes
`2024-01-01T00:00:00Z` / `...00.000Z` / `...+08:00` / `...+0800`, unquoted as SOQL requires.
Type checks follow Salesforce: a quoted value against a date/datetime field is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any


class SoqlError(Exception):
    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
""",
    re.VERBOSE,
)

KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "TRUE",
    "FALSE",
    "NULL",
}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    value: Any = None


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in escapes and nxt not in "_%":
                raise SoqlError("MALFORMED_QUERY", f"Invalid string literal escape: \\{nxt}")
            out.append(escapes.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_datetime(text: str) -> datetime:
    main = text
    tz: timezone = UTC
    if main.endswith("Z"):
        main = main[:-1]
    else:
        sign = 1 if main[-6:-5] == "+" or main[-5:-4] == "+" else -1
        offset = main[-6:] if ":" in main[-6:] else main[-5:]
        main = main[: -len(offset)]
        digits = offset[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in main else "%Y-%m-%dT%H:%M:%S"
    try:
        return datetime.strptime(main, fmt).replace(tzinfo=tz).astimezone(UTC)
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", f"invalid datetime literal: {text}") from None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SoqlError(
                "MALFORMED_QUERY", f"unexpected token at position {pos}: {text[pos : pos + 20]!r}"
            )
        pos = m.end()
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "ws":
            continue
        if kind == "string":
            tokens.append(Token("literal", raw, _unescape(raw[1:-1])))
        elif kind == "datetime":
            tokens.append(Token("literal", raw, parse_datetime(raw)))
        elif kind == "date":
            tokens.append(Token("literal", raw, date.fromisoformat(raw)))
        elif kind == "number":
            tokens.append(Token("literal", raw, Decimal(raw)))
        elif kind == "ident" and raw.upper() in KEYWORDS:
            upper = raw.upper()
            if upper in ("TRUE", "FALSE", "NULL"):
                tokens.append(Token("literal", raw, {"TRUE": True, "FALSE": False, "NULL": None}[upper]))
            else:
                tokens.append(Token("kw", upper, raw))
        else:
            tokens.append(Token(kind, raw))
    return tokens


# ---- syntax tree -------------------------------------------------------------------------
@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Any
    raw: str  # the literal as written, for type errors


@dataclass(frozen=True)
class InList:
    field: str
    values: tuple[Any, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    field: str
    pattern: str


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND / OR
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    part: Any


@dataclass
class Query:
    fields: list[str]
    sobject: str
    where: Any = None
    order_by: list[tuple[str, bool, bool]] = field(default_factory=list)  # (field, descending, nulls_last)
    limit: int | None = None
    offset: int = 0


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> Token | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self.pos += 1
        return tok

    def is_kw(self, word: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind == "kw" and tok.text == word

    def expect_kw(self, word: str) -> None:
        tok = self.take()
        if tok.kind != "kw" or tok.text != word:
            raise SoqlError("MALFORMED_QUERY", f"expecting '{word}', unexpected token: '{tok.text}'")

    def expect_punct(self, ch: str) -> None:
        tok = self.take()
        if tok.kind != "punct" or tok.text != ch:
            raise SoqlError("MALFORMED_QUERY", f"expecting '{ch}', unexpected token: '{tok.text}'")

    def ident(self) -> str:
        tok = self.take()
        if tok.kind != "ident":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
        return tok.text

    def sobject_name(self) -> str:
        tok = self.take()
        # `Order` is an sObject as well as a keyword: after FROM it is a name.
        if tok.kind == "ident" or (tok.kind == "kw" and tok.text == "ORDER" and not self.is_kw("BY")):
            return str(tok.value or tok.text)
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")

    def literal(self) -> Token:
        tok = self.take()
        if tok.kind != "literal":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")
        return tok

    def query(self) -> Query:
        self.expect_kw("SELECT")
        fields = [self.ident()]
        while self.peek() is not None and self.peek().kind == "punct" and self.peek().text == ",":  # type: ignore[union-attr]
            self.take()
            fields.append(self.ident())
        self.expect_kw("FROM")
        q = Query(fields=fields, sobject=self.sobject_name())
        if self.is_kw("WHERE"):
            self.take()
            q.where = self.expr()
        if self.is_kw("ORDER"):
            self.take()
            self.expect_kw("BY")
            while True:
                name = self.ident()
                desc = False
                if self.is_kw("ASC") or self.is_kw("DESC"):
                    desc = self.take().text == "DESC"
                nulls_last = desc
                if self.is_kw("NULLS"):
                    self.take()
                    word = self.take().text
                    if word not in ("FIRST", "LAST"):
                        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{word}'")
                    nulls_last = word == "LAST"
                q.order_by.append((name, desc, nulls_last))
                tok = self.peek()
                if tok is not None and tok.kind == "punct" and tok.text == ",":
                    self.take()
                    continue
                break
        if self.is_kw("LIMIT"):
            self.take()
            q.limit = self._int()
        if self.is_kw("OFFSET"):
            self.take()
            q.offset = self._int()
        if self.peek() is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.peek().text}'")  # type: ignore[union-attr]
        return q

    def _int(self) -> int:
        tok = self.literal()
        if not isinstance(tok.value, Decimal) or tok.value != tok.value.to_integral_value() or tok.value < 0:
            raise SoqlError("MALFORMED_QUERY", f"expecting a non-negative integer, got '{tok.text}'")
        return int(tok.value)

    def expr(self) -> Any:
        parts = [self.term()]
        while self.is_kw("OR"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def term(self) -> Any:
        parts = [self.factor()]
        while self.is_kw("AND"):
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def factor(self) -> Any:
        if self.is_kw("NOT"):
            self.take()
            return Not(self.factor())
        tok = self.peek()
        if tok is not None and tok.kind == "punct" and tok.text == "(":
            self.take()
            inner = self.expr()
            self.expect_punct(")")
            return inner
        name = self.ident()
        if self.is_kw("IN") or (self.is_kw("NOT") and self.is_kw("IN", 1)):
            negated = self.take().text == "NOT"
            if negated:
                self.take()
            self.expect_punct("(")
            values = [self.literal().value]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take()
                values.append(self.literal().value)
            self.expect_punct(")")
            return InList(name, tuple(values), negated)
        if self.is_kw("LIKE"):
            self.take()
            tok = self.literal()
            if not isinstance(tok.value, str):
                raise SoqlError("MALFORMED_QUERY", "LIKE needs a string literal")
            return Like(name, tok.value)
        op_tok = self.take()
        if op_tok.kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op_tok.text}'")
        lit = self.literal()
        return Compare(name, "!=" if op_tok.text == "<>" else op_tok.text, lit.value, lit.text)


def parse(text: str) -> Query:
    return _Parser(tokenize(text)).query()


# ---- evaluation --------------------------------------------------------------------------
Getter = Callable[[dict[str, Any], str], Any]
TypeOf = Callable[[str], str]  # field -> "string" | "datetime" | "date" | "double" | "boolean" | "id"


def check_types(node: Any, type_of: TypeOf) -> None:
    """Salesforce's own literal type rules: dates unquoted, strings quoted."""
    if node is None:
        return
    if isinstance(node, BoolOp):
        for part in node.parts:
            check_types(part, type_of)
    elif isinstance(node, Not):
        check_types(node.part, type_of)
    elif isinstance(node, Compare | InList):
        kind = type_of(node.field)
        values = (node.value,) if isinstance(node, Compare) else node.values
        for value in values:
            if value is None:
                continue
            if kind == "datetime" and not isinstance(value, datetime):
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{node.field}' must be of "
                    "type dateTime and should not be enclosed in quotes",
                )
            if (kind == "date" and not isinstance(value, date)) or (
                kind == "date" and isinstance(value, datetime)
            ):
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{node.field}' must be of "
                    "type date and should not be enclosed in quotes",
                )
            if kind in ("string", "id") and not isinstance(value, str):
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{node.field}' must be of "
                    "type string and should be enclosed in quotes",
                )
            if kind == "double" and not isinstance(value, Decimal):
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{node.field}' must be of "
                    "type double and should not be enclosed in quotes",
                )
    elif isinstance(node, Like):
        type_of(node.field)


def _norm(value: Any) -> Any:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def _cmp(left: Any, op: str, right: Any) -> bool:
    left, right = _norm(left), _norm(right)
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()  # SOQL string comparison is case-insensitive
    try:
        return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op])
    except TypeError:
        return False


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def matches(node: Any, record: dict[str, Any], get: Getter) -> bool:
    if node is None:
        return True
    if isinstance(node, BoolOp):
        results = (matches(p, record, get) for p in node.parts)
        return all(results) if node.op == "AND" else any(results)
    if isinstance(node, Not):
        return not matches(node.part, record, get)
    if isinstance(node, Compare):
        value = get(record, node.field)
        if isinstance(value, str) and isinstance(node.value, str) and node.op in ("=", "!="):
            equal = value.lower() == node.value.lower()
            return equal if node.op == "=" else not equal
        return _cmp(value, node.op, node.value)
    if isinstance(node, InList):
        value = get(record, node.field)
        found = any(
            _cmp(value, "=", v)
            or (isinstance(value, str) and isinstance(v, str) and value.lower() == v.lower())
            for v in node.values
        )
        return found != node.negated
    if isinstance(node, Like):
        return _like(get(record, node.field), node.pattern)
    raise SoqlError("MALFORMED_QUERY", "unsupported condition")


def sort_records(
    records: list[dict[str, Any]], order_by: list[tuple[str, bool, bool]], get: Getter
) -> list[dict[str, Any]]:
    result = list(records)
    for name, desc, nulls_last in reversed(order_by):
        present = [r for r in result if get(r, name) is not None]
        missing = [r for r in result if get(r, name) is None]

        def key(r: dict[str, Any], name: str = name) -> Any:
            value = _norm(get(r, name))
            return value.lower() if isinstance(value, str) and name != "Id" else value

        present.sort(key=key, reverse=desc)
        result = present + missing if nulls_last else missing + present
    return result
