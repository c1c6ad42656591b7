"""Conditions (`when:` on a field, `filter:` on a record or a child line), compiled to predicates.

    {path: stage, eq: 赢单}                 also ne, in, not_in, gt, gte, lt, lte, matches
    {path: phone, present: true}            present: not null, not blank, not an empty list/object
    {all: [c1, c2]}  {any: [c1, c2]}  {not: c}

A predicate answers a clean yes or no, or raises `Unevaluable` when it cannot tell: an ordered
comparison (gt/gte/lt/lte) on a missing value, on text that is not a number, on a boolean, list or
object; `matches` on a list or object. A filter that cannot tell rejects the record (a dead letter
naming the field and why) instead of skipping it: a won order whose amount is "abc" must not
silently stay behind. `eq`/`in` compare by type (13 equals 13.0, not "13"); gt/gte/lt/lte also read
numeric text ("5", "1,234.50") by the grammar of numbers.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from erphub.core.errors import ConditionError, TransformError
from erphub.mappings.numbers import parse_text, show
from erphub.mappings.paths import Path, PathSyntaxError, compile_getter, parse_path

Predicate = Callable[[Any, Any], bool]
YamlPath = tuple[str | int, ...]


COMPARISONS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "matches", "present")
COMBINATORS = ("all", "any", "not")


class Unevaluable(TransformError):
    """A condition that cannot say yes or no about this record; `field` is the source path it tests."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, "condition")
        self.field = field


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return Decimal(repr(value))
    return None


def _number_text(text: str) -> Decimal | None:
    """Ordered comparisons read numeric text (ERP APIs often send amounts as strings)."""
    try:
        return parse_text(text)
    except TransformError:
        return None


def values_equal(value: Any, operand: Any) -> bool:
    a, b = _number(value), _number(operand)
    if a is not None and b is not None:
        return a == b
    if isinstance(value, bool) != isinstance(operand, bool):
        return False
    return bool(value == operand)


def is_present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


def describe(node: Any) -> str:
    """Short human text of a condition, for skip reasons: `status eq '正式'`."""
    if not isinstance(node, dict):
        return repr(node)
    for comb in COMBINATORS:
        if comb in node:
            inner = node[comb]
            if comb == "not":
                return f"not ({describe(inner)})"
            return f" {'and' if comb == 'all' else 'or'} ".join(f"({describe(c)})" for c in inner)
    op = next((k for k in node if k in COMPARISONS), "?")
    return f"{node.get('path')} {op} {node.get(op)!r}"


def compile_condition(node: Any, where: YamlPath,
                      on_path: Callable[[Path, YamlPath], None] | None = None) -> Predicate:
    """`on_path` sees every path (the compiler checks it against the source schema)."""
    if not isinstance(node, dict) or not node:
        raise ConditionError("a condition is an object such as {path: status, eq: 正式} "
                             "or {all: [...]}, {any: [...]}, {not: {...}}", where)
    combs = [k for k in node if k in COMBINATORS]
    if combs:
        if len(node) != 1:
            raise ConditionError(f"{combs[0]!r} must be the only key of its condition", where)
        comb = combs[0]
        inner = node[comb]
        if comb == "not":
            pred = compile_condition(inner, (*where, "not"), on_path)
            return lambda scope, root: not pred(scope, root)
        if not isinstance(inner, list) or not inner:
            raise ConditionError(f"{comb!r} takes a non-empty list of conditions", (*where, comb))
        preds = tuple(compile_condition(c, (*where, comb, i), on_path) for i, c in enumerate(inner))
        if comb == "all":
            return lambda scope, root: all(p(scope, root) for p in preds)
        return lambda scope, root: any(p(scope, root) for p in preds)
    unknown = [k for k in node if k != "path" and k not in COMPARISONS]
    if unknown:
        raise ConditionError(f"unknown condition key {unknown[0]!r}; use path with one of "
                             f"{', '.join(COMPARISONS)}, or all/any/not", (*where, unknown[0]))
    if "path" not in node:
        raise ConditionError("a comparison needs `path:` (the source field it tests)", where)
    try:
        path = parse_path(node["path"])
    except PathSyntaxError as exc:
        raise ConditionError(str(exc), (*where, "path")) from None
    if on_path is not None:
        on_path(path, (*where, "path"))
    ops = [k for k in node if k in COMPARISONS]
    if len(ops) != 1:
        raise ConditionError(f"a comparison takes exactly one operator of {', '.join(COMPARISONS)}", where)
    op = ops[0]
    return _comparison(compile_getter(path), op, node[op], (*where, op), path.text)


def _comparison(get: Callable[[Any, Any], Any], op: str, operand: Any, where: YamlPath,
                label: str) -> Predicate:
    if op in ("eq", "ne") and isinstance(operand, str):
        # text equals only text: one comparison, no number handling (the usual status filter)
        if op == "eq":
            return lambda scope, root: get(scope, root) == operand
        return lambda scope, root: get(scope, root) != operand
    if op == "eq":
        return lambda scope, root: values_equal(get(scope, root), operand)
    if op == "ne":
        return lambda scope, root: not values_equal(get(scope, root), operand)
    if op in ("in", "not_in"):
        if not isinstance(operand, list) or not operand:
            raise ConditionError(f"{op!r} takes a non-empty list of values", where)
        options: Sequence[Any] = tuple(operand)

        def hit(v: Any) -> bool:
            return any(values_equal(v, o) for o in options)

        if op == "in":
            return lambda scope, root: hit(get(scope, root))
        return lambda scope, root: not hit(get(scope, root))
    if op == "present":
        if not isinstance(operand, bool):
            raise ConditionError("'present' takes true or false", where)
        want = operand
        return lambda scope, root: is_present(get(scope, root)) is want
    if op == "matches":
        if not isinstance(operand, str):
            raise ConditionError("'matches' takes a regular expression text", where)
        try:
            rx = re.compile(operand)
        except re.error as exc:
            raise ConditionError(f"invalid regular expression {operand!r}: {exc}", where) from None

        def matches(scope: Any, root: Any) -> bool:
            v = get(scope, root)
            if v is None:
                return False
            if isinstance(v, dict | list):
                raise Unevaluable(f"condition `{label} matches {operand!r}` cannot be evaluated: "
                                  f"{label} is {show(v)}, not text", label)
            return rx.search(v if isinstance(v, str) else show(v)) is not None

        return matches
    bound = _number(operand)
    if bound is None:
        raise ConditionError(f"{op!r} takes a number, got {operand!r}", where)
    compare = {
        "gt": lambda a: a > bound,
        "gte": lambda a: a >= bound,
        "lt": lambda a: a < bound,
        "lte": lambda a: a <= bound,
    }[op]

    def ordered(scope: Any, root: Any) -> bool:
        raw = get(scope, root)
        v = _number_text(raw) if isinstance(raw, str) else _number(raw)
        if v is None:
            what = "missing" if raw is None or raw == "" else f"{show(raw)}, not a number"
            raise Unevaluable(f"condition `{label} {op} {operand}` cannot be evaluated: {label} is {what}",
                              label)
        return compare(v)

    return ordered
