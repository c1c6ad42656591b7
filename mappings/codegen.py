"""Turn the compiled fields of a record (with its child lines) into one Python function.

A field costs what hand-written code costs: a dict lookup, the transform calls, the checks and a
dict store, with no layers of closures between them; the lines of a child collection are mapped in
a loop inside the same function. The generated source contains only identifiers we make
(`t3_0`), `repr()` of plain strings (always a valid, inert literal) and structure; every object
from the mapping (transform closures, constants, defaults, predicates) is passed in through the
function's namespace, never as text.

Which field failed is tracked in plain local variables (`f` the field, `cn`/`ci` the child
collection and line index) that the single exception handler turns into the rejection's path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from erphub.mappings.conditions import Predicate
from erphub.mappings.numbers import finite_problem, kind
from erphub.mappings.paths import Getter
from erphub.mappings.plan import Reject, Step
from erphub.mappings.transforms import Fn, TransformError
from erphub.mappings.validation import Check, Invalid


@dataclass(frozen=True, slots=True)
class ValueField:
    name: str  # target path, as the author wrote it: "FGroup.FNumber"
    parts: tuple[str, ...]
    key: str | None  # a plain one-key source path: read with scope.get(key)
    getter: Getter | Callable[[Any, Any, Any], Any] | None  # any other source (expressions also get `out`)
    has_default: bool
    default: Any
    chain: tuple[Fn, ...]
    when: Predicate | None
    required: str | None  # the rejection reason when required and missing
    checks: tuple[Check, ...]
    omit_if_null: bool
    takes_out: bool = False  # an expression: it may read fields already written (`target.X`)
    finite: bool = False  # a constant checked at compile time: no NaN check per record


@dataclass(frozen=True, slots=True)
class ChildField:
    name: str  # target path of the entry table: "FSaleOrderEntry"
    parts: tuple[str, ...]
    getter: Getter  # the source list
    source: str  # the source path text, for messages
    when: Predicate | None
    line_filters: tuple[Predicate, ...]
    items: tuple[Item, ...]  # the fields of one line
    required: str | None
    checks: tuple[Check, ...]


Item = ValueField | ChildField

_HANDLER = """\
    except Reject as rej:
        if cn is None:
            raise
        raise Reject(f"{cn}[{ci}].{rej.field}" if rej.field else f"{cn}[{ci}]", rej.reason, rej.code) from None
    except TransformError as exc:
        raise Reject(_where(f, cn, ci), str(exc), exc.code) from None
    except Invalid as bad:
        raise Reject(_where(f, cn, ci), bad.reason, bad.code) from None
    except RecursionError:
        raise Reject(_where(f, cn, ci), 'the value is nested too deeply to map', 'input') from None
    except Exception as exc:
        raise Reject(_where(f, cn, ci), f'internal error while mapping (please report it): {exc}',
                     'internal') from None
"""


def _where(field: str, child: str | None, index: int) -> str:
    if child is None:
        return field
    return f"{child}[{index}].{field}" if field else f"{child}[{index}]"


def _not_a_list(name: str, source: str, items: Any) -> Reject:
    return Reject(name, f"expected a list of lines at {source}, got {kind(items)}", "type")


def _finite(value: Any) -> None:
    problem = finite_problem(value)
    if problem is not None:
        raise TransformError(problem, "not_finite")


def _not_an_object(source: str, index: int) -> Reject:
    return Reject("", f"line {index} of {source} is not an object", "type")


class _Writer:
    def __init__(self) -> None:
        self.ns: dict[str, Any] = {
            "Reject": Reject, "TransformError": TransformError, "Invalid": Invalid, "_where": _where,
            "_not_a_list": _not_a_list, "_not_an_object": _not_an_object,
            "_SUSPECT": frozenset({float, dict, list}), "_finite": _finite, "Decimal": Decimal,
        }
        self.lines: list[str] = []
        self.counter = 0

    def name(self, prefix: str, value: Any) -> str:
        self.counter += 1
        ident = f"{prefix}{self.counter}"
        self.ns[ident] = value
        return ident

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def value_field(self, fld: ValueField, depth: int, scope: str, out: str) -> None:
        self.emit(depth, f"f = {fld.name!r}")
        if fld.when is not None:
            self.emit(depth, f"if {self.name('w', fld.when)}({scope}, root):")
            depth += 1
        if fld.key is not None:
            self.emit(depth, f"v = {scope}.get({fld.key!r})")
        else:
            extra = f", {out}" if fld.takes_out else ""
            self.emit(depth, f"v = {self.name('g', fld.getter)}({scope}, root{extra})")
        if fld.has_default:
            fallback = self.name("d", fld.default)
            self.emit(depth, f"if v is None or (v.__class__ is str and not v.strip()): v = {fallback}")
        for fn in fld.chain:
            fast = getattr(fn, "str_fast", None)
            ident = self.name("t", fn)
            if fast is not None:  # text transforms: call the str method directly on text
                self.emit(depth, f"v = {self.name('q', fast)}(v) if v.__class__ is str else {ident}(v)")
            else:
                self.emit(depth, f"v = {ident}(v)")
        # NaN or an infinity would be written as invalid JSON (or a wrong amount): refuse it, wherever it
        # hides. Transforms that only ever return finite numbers or text (finite_out) need no check.
        computed = fld.chain[-1] if fld.chain else fld.getter  # what produced the value last
        if not fld.finite and not getattr(computed, "finite_out", False):
            self.emit(depth, "if v.__class__ in _SUSPECT: _finite(v)")
            self.emit(depth, "elif v.__class__ is Decimal and not v.is_finite(): _finite(v)")
        self.required(fld.required, depth)
        for check in fld.checks:
            self.emit(depth, f"{self.name('k', check)}(v)")
        if fld.omit_if_null:
            self.emit(depth, "if v is not None:")
            depth += 1
        self.store(fld.parts, depth, out)

    def required(self, reason: str | None, depth: int) -> None:
        if reason is not None:
            self.emit(depth, "if v is None or (v.__class__ is str and not v.strip()) or "
                             "((v.__class__ is list or v.__class__ is dict) and not v):")
            self.emit(depth + 1, f"raise Reject(f, {self.name('r', reason)}, 'required')")

    def store(self, parts: tuple[str, ...], depth: int, out: str) -> None:
        if len(parts) == 1:
            self.emit(depth, f"{out}[{parts[0]!r}] = v")
            return
        if len(parts) == 2:  # `FMaterialId.FNumber`: build the reference object in one literal
            head, leaf = parts
            self.emit(depth, f"p = {out}.get({head!r})")
            self.emit(depth, f"if p is None: {out}[{head!r}] = {{{leaf!r}: v}}")
            self.emit(depth, f"else: p[{leaf!r}] = v")
            return
        self.emit(depth, f"o = {out}")
        for part in parts[:-1]:
            self.emit(depth, f"p = o.get({part!r})")
            self.emit(depth, f"if p is None: p = o[{part!r}] = {{}}")
            self.emit(depth, "o = p")
        self.emit(depth, f"o[{parts[-1]!r}] = v")

    def child_inline(self, child: ChildField, depth: int) -> None:
        """The entry table of a record: its lines mapped in a loop right here."""
        self.emit(depth, f"f = {child.name!r}")
        if child.when is not None:
            self.emit(depth, f"if {self.name('w', child.when)}(scope, root):")
            depth += 1
        src = self.name("src", child.source)
        self.emit(depth, f"items = {self.name('g', child.getter)}(scope, root)")
        self.emit(depth, "if items is None:")
        self.emit(depth + 1, "res = None")
        self.emit(depth, "elif items.__class__ is not list:")
        self.emit(depth + 1, f"raise _not_a_list(f, {src}, items)")
        self.emit(depth, "else:")
        d = depth + 1
        self.emit(d, "res = []")
        self.emit(d, f"cn = {child.name!r}")
        self.emit(d, "for ci, line in enumerate(items):")
        self.emit(d + 1, "if not isinstance(line, dict):")
        self.emit(d + 2, f"raise _not_an_object({src}, ci)")
        if child.line_filters:
            self.emit(d + 1, "f = ''")  # a line filter that cannot tell rejects the record at this line
        for pred in child.line_filters:
            self.emit(d + 1, f"if not {self.name('lf', pred)}(line, root): continue")
        self.emit(d + 1, "row = {}")
        for item in child.items:
            if isinstance(item, ChildField):  # a table inside a line: its own function
                self.emit(d + 1, "f = ''")
                self.emit(d + 1, f"{self.name('s', child_step(item))}(line, root, row)")
            else:
                self.value_field(item, d + 1, "line", "row")
        self.emit(d + 1, "res.append(row)")
        self.emit(d, "cn = None")
        self.emit(depth, f"f = {child.name!r}")
        self.emit(depth, "v = res")
        self.required(child.required, depth)
        for check in child.checks:
            self.emit(depth, f"{self.name('k', check)}(v)")
        self.store(child.parts, depth, "out")

    def function(self, items: tuple[Item, ...] | list[Item], label: str) -> Step:
        self.emit(0, "def fields(scope, root, out):")
        self.emit(1, "f = ''")
        self.emit(1, "cn = None")
        self.emit(1, "ci = 0")
        self.emit(1, "try:")
        for item in items:
            if isinstance(item, ChildField):
                self.child_inline(item, 2)
            else:
                self.value_field(item, 2, "scope", "out")
        self.emit(2, "pass")
        source = "\n".join(self.lines) + "\n" + _HANDLER
        code = compile(source, f"<mapping {label}>", "exec")
        exec(code, self.ns)
        fn: Callable[[Any, Any, Any], None] = self.ns["fields"]
        fn.source = source  # type: ignore[attr-defined]  # for reading what a mapping compiled to
        return fn


def build(items: tuple[Item, ...] | list[Item], label: str) -> Step:
    """One function `fields(scope, root, out)` that writes every item into `out` or raises Reject."""
    return _Writer().function(items, label)


def child_step(child: ChildField) -> Step:
    """A child collection as a step of its own (used for tables nested inside lines)."""
    return build([child], f"{child.name}")
