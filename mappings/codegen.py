"""Turn the compiled fields of one scope (a record, or a child line) into one Python function.

A field costs what hand-written code costs: a dict lookup, the transform calls, the checks and a
dict store, with no layers of closures between them. The generated source contains only
identifiers we make (`t3_0`), `repr()` of plain strings (always a valid, inert literal) and
structure; every object from the mapping (transform closures, constants, defaults, predicates) is
passed in through the function's namespace, never as text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mappings.conditions import Predicate
from mappings.paths import Getter
from mappings.plan import Reject, Step
from mappings.transforms import Fn, TransformError
from mappings.validation import Check, Invalid


@dataclass(frozen=True, slots=True)
class ValueField:
    name: str  # target path, as the author wrote it: "FGroup.FNumber"
    parts: tuple[str, ...]
    key: str | None  # a plain one-key source path: read with scope.get(key)
    getter: Getter | None  # any other source: path, coalesce, template, constant
    has_default: bool
    default: Any
    chain: tuple[Fn, ...]
    when: Predicate | None
    required: str | None  # the rejection reason when required and missing
    checks: tuple[Check, ...]
    omit_if_null: bool


@dataclass(frozen=True, slots=True)
class OpaqueStep:
    """A step that writes its own target (child collections); it raises Reject itself."""

    step: Step


Item = ValueField | OpaqueStep


def build(items: list[Item], label: str) -> Step:
    ns: dict[str, Any] = {
        "Reject": Reject, "TransformError": TransformError, "Invalid": Invalid,
    }
    body: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, OpaqueStep):
            ns[f"s{i}"] = item.step
            body.append(f"f = ''\n        s{i}(scope, root, out)")
            continue
        body.append(_field(i, item, ns))
    source = (
        "def fields(scope, root, out):\n"
        "    f = ''\n"
        "    try:\n"
        + "\n".join(f"        {block}" for block in body) + "\n"
        "    except Reject:\n"
        "        raise\n"
        "    except TransformError as exc:\n"
        "        raise Reject(f, str(exc), exc.code) from None\n"
        "    except Invalid as bad:\n"
        "        raise Reject(f, bad.reason, bad.code) from None\n"
        "    except Exception as exc:\n"
        "        raise Reject(f, f'internal error: {type(exc).__name__}: {exc}', 'internal') from None\n"
    )
    code = compile(source, f"<mapping {label}>", "exec")
    exec(code, ns)
    fn: Callable[[Any, Any, Any], None] = ns["fields"]
    fn.source = source  # type: ignore[attr-defined]  # for reading what a mapping compiled to
    return fn


def _field(i: int, fld: ValueField, ns: dict[str, Any]) -> str:
    lines = [f"f = {fld.name!r}"]
    if fld.key is not None:
        lines.append(f"v = scope.get({fld.key!r})")
    else:
        ns[f"g{i}"] = fld.getter
        lines.append(f"v = g{i}(scope, root)")
    if fld.has_default:
        ns[f"d{i}"] = fld.default
        lines.append(f"if v is None or (v.__class__ is str and not v.strip()): v = d{i}")
    for j, fn in enumerate(fld.chain):
        fast = getattr(fn, "str_fast", None)
        ns[f"t{i}_{j}"] = fn
        if fast is not None:  # text transforms: call the str method directly on text
            ns[f"q{i}_{j}"] = fast
            lines.append(f"v = q{i}_{j}(v) if v.__class__ is str else t{i}_{j}(v)")
        else:
            lines.append(f"v = t{i}_{j}(v)")
    if fld.required is not None:
        ns[f"r{i}"] = fld.required
        lines.append(f"if v is None or (v.__class__ is str and not v.strip()) or "
                     f"((v.__class__ is list or v.__class__ is dict) and not v): raise Reject(f, r{i}, 'required')")
    for j, check in enumerate(fld.checks):
        ns[f"k{i}_{j}"] = check
        lines.append(f"k{i}_{j}(v)")
    if fld.omit_if_null:
        store = _store(fld.parts)
        lines.append("if v is not None:")
        lines.extend("    " + s for s in store)
    else:
        lines.extend(_store(fld.parts))
    if fld.when is not None:
        ns[f"w{i}"] = fld.when
        head = lines[0]
        return head + f"\n        if w{i}(scope, root):\n" + "\n".join("            " + s for s in lines[1:])
    return "\n        ".join(lines)


def _store(parts: tuple[str, ...]) -> list[str]:
    if len(parts) == 1:
        return [f"out[{parts[0]!r}] = v"]
    if len(parts) == 2:  # `FMaterialId.FNumber`: build the reference object in one literal
        head, leaf = parts
        return [f"p = out.get({head!r})",
                f"if p is None: out[{head!r}] = {{{leaf!r}: v}}",
                f"else: p[{leaf!r}] = v"]
    out = ["o = out"]
    for part in parts[:-1]:
        out.append(f"p = o.get({part!r})")
        out.append(f"if p is None: p = o[{part!r}] = {{}}")
        out.append("o = p")
    out.append(f"o[{parts[-1]!r}] = v")
    return out
