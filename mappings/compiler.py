"""Mapping YAML -> Plan: every name resolved, every argument checked, every path parsed, once.

Anything wrong is a MappingError naming the file, the line, the column and the YAML path of the
offending key, so `erphub mapping check` can print `customer.yaml:14:7: fields.FTEL.transforms[0]:
unknown transform 'phon'; did you mean 'phone'?` and exit 2.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path as FsPath
from string import Formatter
from typing import Any

from pydantic import ValidationError

from erphub.core.errors import MappingError
from erphub.core.records import EntitySpec
from erphub.core.yamlsource import Locator, dotted, parse_yaml
from erphub.mappings import schema_check
from erphub.mappings.codegen import ChildField, Item, ValueField, build
from erphub.mappings.conditions import (
    COMPARISONS,
    ConditionError,
    Predicate,
    Unevaluable,
    compile_condition,
    describe,
)
from erphub.mappings.expressions import Eval, ExprError, compile_expression
from erphub.mappings.lookups import LookupTable, LookupTables
from erphub.mappings.numbers import DecimalMark, finite_problem, format_value, show
from erphub.mappings.numbers import kind as kind_of
from erphub.mappings.paths import Getter, Path, PathSyntaxError, compile_getter, parse_path
from erphub.mappings.plan import Filter, Plan
from erphub.mappings.spec import ALLOWED_KEYS, FieldSpec, MappingSpec
from erphub.mappings.transforms import TRANSFORMS, ArgError, Fn, TableArgError, TransformError
from erphub.mappings.validation import Check, compile_checks

YamlPath = tuple[str | int, ...]
_NO_ARGS = object()
_PARAM = re.compile(r"\$\{param:([A-Za-z_][\w.-]*)\}")
_PLAIN_KEY = re.compile(r"(.*?)\s*:(?:\s|$|[,}\]])")  # a plain YAML key ends at ': ' (or ':' at a flow end)


def compile_mapping(
    path: str | FsPath,
    *,
    source: EntitySpec | None = None,
    target: EntitySpec | None = None,
    lookups_dir: str | FsPath | None = None,
    tables: LookupTables | None = None,
    params: Mapping[str, Any] | None = None,
) -> Plan:
    """Compile a mapping file. `source`/`target` (a connector's EntitySpecs) enable schema checks;
    `params` (the pipeline's `params:`) fill `${param:NAME}` over the mapping's own defaults."""
    file = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError("file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read file: {exc}", file=file) from None
    return compile_text(text, file=file, source=source, target=target, lookups_dir=lookups_dir, tables=tables,
                        params=params)


def compile_text(
    text: str,
    *,
    file: str = "<text>",
    source: EntitySpec | None = None,
    target: EntitySpec | None = None,
    lookups_dir: str | FsPath | None = None,
    tables: LookupTables | None = None,
    params: Mapping[str, Any] | None = None,
) -> Plan:
    try:
        data, locator = parse_yaml(text, file, MappingError)
        compiler = _Compiler(data, locator, file, source, target, tables or LookupTables(lookups_dir))
        compiler.lines = text.splitlines()
        compiler.pipeline_params = {str(k): str(v) for k, v in (params or {}).items()}
        return compiler.compile()
    except RecursionError:
        raise MappingError("the mapping is nested too deeply", file=file) from None


class MappingErrors(MappingError):
    """Several mistakes in one file, each `file:line:col: field: message` on a line of its own.
    Its own location is the first one's, so code reading `.line` sees the first mistake."""

    def __init__(self, errors: Sequence[MappingError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, file=first.file, line=first.line, column=first.column, field=first.field)

    def render(self) -> str:
        if not getattr(self, "errors", None):
            return super().render()
        return "\n".join(e.render() for e in self.errors) + f"\n{len(self.errors)} errors in {self.errors[0].file}"


class _Reported(MappingError):
    """A part whose errors were already collected: skip it without a second message."""

    def __init__(self) -> None:
        super().__init__("(reported)")


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _listing(options: Iterable[str], limit: int = 25) -> str:
    items = sorted(options)
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _text_of(value: Any) -> str:
    if isinstance(value, int | float | Decimal):
        return format_value(value, "", "point")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _dates_as_text(fn: Eval) -> Eval:
    """A computed date is written as ISO text (`2026-04-01`), like the datetime transform writes text."""
    if getattr(fn, "no_date", False):  # arithmetic, round, money, text: never a date, no wrapper
        return fn

    def field(scope: Any, root: Any, out: Any) -> Any:
        v = fn(scope, root, out)
        return v.isoformat() if v.__class__ is date else v

    if getattr(fn, "finite_out", False):
        field.finite_out = True  # type: ignore[attr-defined]
    return field


def _clone(value: Any) -> Any:
    """Fresh copy of a YAML constant, so no two output records share a dict or list."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _set_nested(out: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


class _Compiler:
    def __init__(self, data: Any, locator: Locator, file: str, source: EntitySpec | None,
                 target: EntitySpec | None, tables: LookupTables) -> None:
        self.data = data
        self.locator = locator
        self.file = file
        self.source = source
        self.target = target
        self.tables = tables
        self.lines: list[str] = []  # the file's text, to read map keys as written
        self.errors: list[MappingError] = []
        self.pipeline_params: dict[str, str] = {}
        self.param_values: dict[str, str] = {}
        self.lets: dict[str, Eval] = {}
        self._scope_list: str | None = None
        self._expr_where: YamlPath | None = None
        self.included: dict[tuple[str | int, ...], tuple[str, Locator, list[str]]] = {}
        mark = data.get("decimal") if isinstance(data, dict) else None
        self.decimal_mark: DecimalMark = "comma" if mark == "comma" else "point"

    # --- errors ------------------------------------------------------------------------------------

    def error(self, message: str, where: YamlPath) -> MappingError:
        file, locator, _ = self._origin(where)
        line, column = locator.find(where)
        return MappingError(message, file=file, line=line, column=column, field=dotted(where) or None)

    def _origin(self, where: YamlPath) -> tuple[str, Locator, list[str]]:
        """The file a piece of the mapping came from: the mapping itself or an `include:`d fragment."""
        return self.included.get(tuple(where[:2]), (self.file, self.locator, self.lines))

    def _includes(self) -> None:
        """`include: [shared.yaml]`: a fragment's params, let and fields, under the mapping's own."""
        assert isinstance(self.data, dict)
        names = self.data.get("include")
        if names is None:
            return
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.collect(self.error("include is a list of fragment files", ("include",)))
            return
        base = FsPath(self.file).parent
        merged: dict[str, dict[str, Any]] = {"params": {}, "let": {}, "fields": {}}
        for i, name in enumerate(names):
            path = base / name
            try:
                text = path.read_text(encoding="utf-8")
                data, locator = parse_yaml(text, str(path), MappingError)
            except (OSError, UnicodeDecodeError) as exc:
                self.collect(self.error(f"cannot read included fragment {name!r}: {exc}", ("include", i)))
                continue
            except MappingError as exc:
                self.collect(exc)
                continue
            if not isinstance(data, dict):
                self.collect(MappingError("a fragment is a YAML object with params, let and/or fields", file=str(path)))
                continue
            for key in data:
                if key not in merged:
                    self.collect(MappingError(f"unknown key {key!r} in a fragment{_suggest(key, merged)} "
                                              f"(allowed: params, let, fields)", file=str(path),
                                              line=locator.find((key,))[0], column=locator.find((key,))[1],
                                              field=key))
                    continue
                section = data[key]
                if not isinstance(section, dict):
                    self.collect(MappingError(f"{key} is an object", file=str(path), line=locator.find((key,))[0],
                                              field=key))
                    continue
                for sub, value in section.items():
                    merged[key][sub] = value
                    self.included[(key, sub)] = (str(path), locator, text.splitlines())
        own = self.data
        for key, section in merged.items():
            mine = own.get(key)
            if section:
                for sub in (mine or {}):
                    self.included.pop((key, sub), None)  # the mapping's own definition wins
                own[key] = {**section, **(mine if isinstance(mine, dict) else {})}
        own.pop("include", None)

    def _data_path(self, loc: Sequence[Any]) -> YamlPath:
        """The part of a pydantic error location that exists in the YAML (drops union tags)."""
        node, out = self.data, []
        for part in loc:
            in_map = isinstance(node, dict) and isinstance(part, str) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if in_map or in_list:
                node = node[part]
            else:
                break
            out.append(part)
        return tuple(out)

    def _pydantic_error(self, exc: ValidationError, base: YamlPath = ()) -> MappingError:
        return self._pydantic_errors(exc, base)[0]

    def _pydantic_errors(self, exc: ValidationError, base: YamlPath = ()) -> list[MappingError]:
        """Every problem pydantic found, each at its own line; a missing key that an unknown key
        beside it looks like is named as the likely misspelling."""
        details = exc.errors()
        extras: dict[YamlPath, list[str]] = {}
        for err in details:
            if err["type"] == "extra_forbidden":
                where = self._data_path((*base, *err["loc"]))
                if where:
                    extras.setdefault(where[:-1], []).append(str(where[-1]))
        out: list[MappingError] = []
        seen: set[tuple[YamlPath, str]] = set()
        for err in details:
            loc = tuple(err["loc"])
            where = self._data_path((*base, *loc))
            kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
            if kind == "missing":
                wanted = str(loc[-1]) if loc else ""
                msg = f"missing required key {wanted!r}" if loc else msg
                close = difflib.get_close_matches(wanted, extras.get(where, []), n=1)
                if close:
                    msg += f"; is {close[0]!r} a misspelling of it?"
            elif kind == "extra_forbidden":
                parent = where[:-1]
                context = self._context_of(parent)
                allowed = ALLOWED_KEYS.get(context, ())
                bad = str(where[-1]) if where else str(loc[-1])
                msg = f"unknown key {bad!r}" + _suggest(bad, allowed)
                if allowed:
                    msg += f" (allowed here: {', '.join(allowed)})"
            if (where, msg) not in seen:
                seen.add((where, msg))
                out.append(self.error(msg, where))
        return out or [self.error("invalid mapping", base)]

    def collect(self, exc: MappingError) -> None:
        """Note an error and go on, so one pass reports every mistake of the file."""
        if isinstance(exc, MappingErrors):
            self.errors.extend(exc.errors)
        elif not isinstance(exc, _Reported):
            self.errors.append(exc)

    @staticmethod
    def _context_of(parent: YamlPath) -> str:
        if not parent:
            return "mapping"
        if len(parent) >= 2 and parent[-2] == "fields":
            return "field"
        if len(parent) >= 2 and parent[-2] == "cases":
            return "cases"
        return str(parent[-1]) if parent[-1] in ALLOWED_KEYS else ""

    # --- schema checks -------------------------------------------------------------------------------

    def _check_entity(self, declared: str, spec: EntitySpec | None, role: str) -> None:
        if spec is not None and declared not in (spec.name, spec.native_name):
            raise self.error(
                f"this mapping's {role} is {declared!r}, but the connector's entity is {spec.name!r} "
                f"({spec.native_name})", (role,)
            )

    def _check_source(self, path: Path, where: YamlPath, scope_list: str | None) -> None:
        if self.source is None or self.source.fields is None or path.head is None:
            return
        if path.from_root or scope_list is None:
            allowed, what = self.source.fields, f"source entity {self.source.name!r}"
        else:
            child = self.source.child_fields.get(scope_list)
            if child is None:
                return
            allowed, what = child, f"lines of {scope_list!r} in source entity {self.source.name!r}"
        if path.head not in allowed:
            raise self.error(
                f"source field {path.head!r} is not in the schema of {what}{_suggest(path.head, allowed)} "
                f"(fields: {_listing(allowed)})", where
            )
        # `FRECEIVEBILLENTRY[*].FRECTOTALAMOUNTFOR`: the field inside a declared child is checked too.
        inner = self.source.child_fields.get(path.head) if (path.from_root or scope_list is None) else None
        sub = next((s for s in path.steps[1:] if isinstance(s, str)), None)
        if inner is not None and sub is not None and sub not in inner:
            raise self.error(
                f"source field {sub!r} is not in the schema of {path.head!r} in source entity "
                f"{self.source.name!r}{_suggest(sub, inner)} (fields: {_listing(inner)})", where
            )

    def _check_target(self, name: str, where: YamlPath, child_target: str | None, sub: str | None = None) -> None:
        if self.target is None or self.target.fields is None:
            return
        if child_target is None and sub is not None:
            inner = self.target.child_fields.get(name)
            if inner is not None and sub not in inner:
                raise self.error(
                    f"target field {sub!r} is not accepted inside {name!r} of target entity "
                    f"{self.target.name!r}{_suggest(sub, inner)} (fields: {_listing(inner)})", where
                )
        if child_target is None:
            allowed, what = self.target.fields, f"target entity {self.target.name!r}"
        else:
            child = self.target.child_fields.get(child_target)
            if child is None:
                return
            allowed, what = child, f"{child_target!r} lines of target entity {self.target.name!r}"
        if name not in allowed:
            raise self.error(
                f"target field {name!r} is not accepted by {what}{_suggest(name, allowed)} "
                f"(fields: {_listing(allowed)})", where
            )

    def _path(self, text: Any, where: YamlPath, scope_list: str | None) -> Path:
        try:
            path = parse_path(text)
        except PathSyntaxError as exc:
            raise self.error(str(exc), where) from None
        self._check_source(path, where, scope_list)
        return path

    # --- whole mapping ---------------------------------------------------------------------------------

    def compile(self) -> Plan:
        if not isinstance(self.data, dict):
            raise self.error("a mapping file is a YAML object with source, target and fields", ())
        self.data = dict(self.data)
        self._includes()
        self._params_and_substitute()
        spec = self._spec()
        self._lets(spec)
        for role, entity in (("source", self.source), ("target", self.target)):
            try:
                self._check_entity(getattr(spec, role), entity, role)
            except MappingError as exc:
                self.collect(exc)
        try:
            filters = self._filters(spec.filter, ("filter",), None)
        except MappingError as exc:
            self.collect(exc)
            filters = []
        items = self._fields(spec.fields, ("fields",), None, None)
        produced = frozenset(name.split(".")[0] for name in spec.fields)
        try:
            owned = self._key_and_owns(spec, produced)
        except MappingError as exc:
            self.collect(exc)
        self.raise_errors()
        return Plan(
            source_entity=spec.source,
            target_entity=spec.target,
            key_field=spec.key,
            owned_fields=owned,
            produced_fields=produced,
            source_file=self.file,
            description=spec.description,
            filters=filters,
            steps=[build(items, self.file)],
        )

    def _params_and_substitute(self) -> None:
        """`${param:NAME}` in any text of the file: the pipeline's `params:` win over the mapping's
        own defaults. Expressions read their parameters themselves (as values, never as code)."""
        assert isinstance(self.data, dict)
        declared = self.data.get("params")
        defaults: dict[str, str] = {}
        if isinstance(declared, dict):
            for name, value in declared.items():
                if isinstance(value, str | int | float) and not isinstance(value, bool):
                    defaults[str(name)] = str(value)
        self.param_values = {**defaults, **self.pipeline_params}
        self.data = self._substitute(self.data, ())

    def _substitute(self, node: Any, where: YamlPath) -> Any:
        if isinstance(node, dict):
            return {k: (v if k in ("expr", "if", "let", "params") else self._substitute(v, (*where, k)))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [self._substitute(v, (*where, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and "${param:" in node:
            def one(m: re.Match[str]) -> str:
                value = self.param_values.get(m.group(1))
                if value is None:
                    known = ", ".join(sorted(self.param_values)) or "none"
                    self.collect(self.error(f"unknown parameter {m.group(1)!r} (declared: {known}); declare it "
                                            f"under `params:` in the mapping or the pipeline", where))
                    return m.group(0)
                return value
            return _PARAM.sub(one, node)
        return node

    def _lets(self, spec: MappingSpec) -> None:
        """`let:` names, in the order written; each may use the ones before it."""
        for name, text in spec.let.items():
            where = ("let", name)
            if not re.fullmatch(r"[^\W\d]\w*", name) or name in ("target",):
                self.collect(self.error(f"a let name is a plain word, not {name!r}", where))
                continue
            try:
                self._scope_list, self._expr_where = None, None  # paths are read where the name is used
                self.lets[name] = compile_expression(text, self)
            except ExprError as exc:
                self.collect(self._expr_error(exc, text, where))

    def _spec(self) -> MappingSpec:
        """The validated file. Fields with shape errors are set aside (their errors noted) so the rest
        of the file is still checked in the same pass."""
        try:
            return MappingSpec.model_validate(self.data)
        except ValidationError as exc:
            errors = self._pydantic_errors(exc)
        self.errors.extend(errors)
        fields = self.data.get("fields")
        bad = {e.field.split(".")[1] for e in errors if e.field and e.field.startswith("fields.")
               and e.field.count(".") >= 1}
        if isinstance(fields, dict) and bad and all(e.field and e.field.startswith("fields.") for e in errors):
            rest = {k: v for k, v in fields.items() if k not in bad}
            if rest:
                try:
                    return MappingSpec.model_validate({**self.data, "fields": rest})
                except ValidationError:
                    pass
        self.raise_errors()
        raise AssertionError("unreachable")  # pragma: no cover

    def raise_errors(self) -> None:
        if not self.errors:
            return
        ordered = self.errors  # in the order found: shape, fields, then whole-file rules
        if len(ordered) == 1:
            raise ordered[0]
        raise MappingErrors(ordered)

    def _key_and_owns(self, spec: MappingSpec, produced: frozenset[str]) -> frozenset[str] | None:
        if spec.key is None and self.target is not None and self.target.key_field:
            # Without a key a create that landed before a crash cannot be found again: it would be duplicated.
            raise self.error(f"target entity {self.target.name!r} matches records by "
                             f"{self.target.key_field!r}: add `key: {self.target.key_field}` and map that field",
                             ("target",))
        if spec.key is not None:
            if spec.key not in spec.fields:
                raise self.error(f"key field {spec.key!r} is not one of this mapping's fields"
                                 f"{_suggest(spec.key, spec.fields)}", ("key",))
            if spec.fields[spec.key].each is not None:
                raise self.error("a child collection cannot be the key", ("key",))
            if self.target is not None and self.target.key_field and self.target.key_field != spec.key:
                raise self.error(f"target entity {self.target.name!r} matches records by "
                                 f"{self.target.key_field!r}, not {spec.key!r}", ("key",))
        owned: frozenset[str] | None = None
        if spec.owns is not None:
            for i, name in enumerate(spec.owns):
                if name not in produced:
                    raise self.error(f"owned field {name!r} is not produced by this mapping"
                                     f"{_suggest(name, produced)}", ("owns", i))
            owned = frozenset(spec.owns)
        return owned

    # --- filters and conditions ------------------------------------------------------------------------

    def _condition(self, node: Any, where: YamlPath, scope_list: str | None) -> Predicate:
        if isinstance(node, str):  # `when: "amount > 0 and currency == 'CNY'"`
            test = self._expression(node, where, scope_list)
            what = f"the condition {node!r}"

            def holds(scope: Any, root: Any) -> bool:
                hit = test(scope, root, {})
                if hit is True or hit is False:
                    return hit
                raise Unevaluable(f"{what} is {kind_of(hit)} {show(hit)}, not true or false", "")
            return holds
        try:
            return compile_condition(node, where, lambda p, w: self._check_source(p, w, scope_list))
        except ConditionError as exc:
            raise self.error(str(exc), exc.where) from None

    def _filters(self, node: Any, where: YamlPath, scope_list: str | None) -> list[Filter]:
        if node is None:
            return []
        items = list(enumerate(node)) if isinstance(node, list) else [(None, node)]
        if not items:
            raise self.error("filter is an empty list", where)
        out: list[Filter] = []
        for i, item in items:
            here = where if i is None else (*where, i)
            reason: str | None = None
            cond, cond_where = item, here
            if isinstance(item, dict) and "when" in item:
                extra = set(item) - {"when", "reason"}
                if extra:
                    bad = sorted(extra)[0]
                    raise self.error(f"unknown key {bad!r} in a filter (allowed: when, reason)", (*here, bad))
                reason = item.get("reason")
                if reason is not None and not isinstance(reason, str):
                    raise self.error("reason is a text", (*here, "reason"))
                cond, cond_where = item["when"], (*here, "when")
            pred = self._condition(cond, cond_where, scope_list)
            out.append((pred, self._skip_reason(cond, reason)))
        return out

    @staticmethod
    def _skip_reason(cond: Any, reason: str | None) -> Callable[[Any], str]:
        if reason:
            return lambda record: reason
        text = describe(cond)
        simple = isinstance(cond, dict) and "path" in cond and any(k in COMPARISONS for k in cond)
        if simple:
            get = compile_getter(parse_path(cond["path"]))
            return lambda record: f"filter not met: {text} (got {show(get(record, record))})"
        return lambda record: f"filter not met: {text}"

    # --- fields ------------------------------------------------------------------------------------------

    def _fields(self, fields: dict[str, FieldSpec], where: YamlPath, scope_list: str | None,
                child_target: str | None) -> list[Item]:
        names = list(fields)
        for name in names:
            parts = name.split(".")
            try:
                if any(not p.strip() for p in parts):
                    raise self.error(f"target field path {name!r} has an empty segment", (*where, name))
                self._check_target(parts[0], (*where, name), child_target, parts[1] if len(parts) > 1 else None)
                schema_check.check_target(self, fields[name], parts, (*where, name), child_target)
            except MappingError as exc:
                self.collect(exc)
        for a in names:  # `FGroup` and `FGroup.FNumber` would overwrite each other
            for b in names:
                if a != b and b.startswith(a + "."):
                    self.collect(self.error(f"target field {b!r} is inside {a!r}, which is also set", (*where, b)))
        items: list[Item] = []
        for name, fs in fields.items():
            here = (*where, name)
            try:
                if fs.each is not None:
                    items.append(self._child(name, fs, here, scope_list))
                else:
                    items.append(self._value_field(name, fs, here, scope_list))
            except MappingError as exc:
                self.collect(exc)
        return items

    def _raw(self, where: YamlPath) -> Any:
        node = self.data
        for part in where:
            node = node[part]
        return node

    def _source(self, fs: FieldSpec, where: YamlPath,
                scope_list: str | None) -> tuple[Getter | Eval, str, str | None]:
        """The getter of a field's raw value, a label for messages, and the key of a one-key path."""
        kind = fs.source_kind
        raw_is_map = isinstance(self._raw(where), dict)
        if kind == "from":
            path = self._path(fs.from_, (*where, "from") if raw_is_map else where, scope_list)
            simple = not path.from_root and len(path.steps) == 1 and isinstance(path.steps[0], str)
            return compile_getter(path), str(fs.from_), path.steps[0] if simple else None  # type: ignore[return-value]
        if kind == "const":
            value = fs.const
            problem = finite_problem(value)
            if problem:
                raise self.error(f"constant: {problem}", (*where, "const") if raw_is_map else where)
            if isinstance(value, dict) and not any(isinstance(v, dict | list) for v in value.values()):
                flat = value  # the common `{FNumber: "100"}`: a shallow copy is a fresh copy
                return (lambda scope, root: flat.copy()), "const", None
            if isinstance(value, dict | list):
                return (lambda scope, root: _clone(value)), "const", None
            return (lambda scope, root: value), "const", None
        if kind == "coalesce":
            assert fs.coalesce is not None
            getters = tuple(self._path(p, (*where, "coalesce", i), scope_list)
                            for i, p in enumerate(fs.coalesce))
            compiled = tuple(compile_getter(p) for p in getters)

            def coalesce(scope: Any, root: Any) -> Any:
                for get in compiled:
                    v = get(scope, root)
                    if v is not None and v != "" and v != [] and not (isinstance(v, str) and not v.strip()):
                        return v
                return None

            return coalesce, "coalesce(" + ", ".join(fs.coalesce) + ")", None
        if kind == "expr":
            assert fs.expr is not None
            return _dates_as_text(self._expression(fs.expr, (*where, "expr"), scope_list)), f"expr {fs.expr!r}", None
        if kind == "cases":
            assert fs.cases is not None
            return _dates_as_text(self._cases(fs, (*where, "cases"), scope_list)), "cases", None
        assert fs.template is not None
        return self._template(fs.template, (*where, "template"), scope_list), "template", None

    # --- expressions ---------------------------------------------------------------------------------

    def _expression(self, text: str, where: YamlPath, scope_list: str | None) -> Eval:
        self._scope_list, self._expr_where = scope_list, where
        try:
            return compile_expression(text, self)
        except ExprError as exc:
            raise self._expr_error(exc, text, where) from None

    def _expr_error(self, exc: ExprError, text: str, where: YamlPath) -> MappingError:
        file, locator, lines = self._origin(where)
        line, column = locator.find(where)
        if line is not None and column is not None and 0 < line <= len(lines) and "\n" not in text:
            found = lines[line - 1].find(text, column - 1)
            if found >= 0:
                column = found + exc.offset + 1
        return MappingError(f"expression: {exc}", file=file, line=line, column=column,
                            field=dotted(where) or None)

    def _cases(self, fs: FieldSpec, where: YamlPath, scope_list: str | None) -> Eval:
        assert fs.cases is not None
        branches: list[tuple[Eval, Eval]] = []
        otherwise: Eval | None = None
        for i, case in enumerate(fs.cases):
            here = (*where, i)
            if case.if_ is None:
                if i != len(fs.cases) - 1:
                    raise self.error("`else` must be the last case", here)
                otherwise = self._case_value(case.else_, (*here, "else"), scope_list)
                continue
            cond = self._expression(case.if_, (*here, "if"), scope_list)
            branches.append((cond, self._case_value(case.then, (*here, "then"), scope_list)))
        frozen = tuple(branches)

        def choose(scope: Any, root: Any, out: Any) -> Any:
            for n, (cond, value) in enumerate(frozen):
                hit = cond(scope, root, out)
                if hit is True:
                    return value(scope, root, out)
                if hit is not False:
                    raise TransformError(f"the condition of case {n} is {kind_of(hit)} {show(hit)}, "
                                         f"not true or false")
            return otherwise(scope, root, out) if otherwise is not None else None

        return choose

    def _case_value(self, node: Any, where: YamlPath, scope_list: str | None) -> Eval:
        if isinstance(node, dict) and set(node) == {"expr"}:
            return self._expression(node["expr"], (*where, "expr"), scope_list)
        if isinstance(node, dict | list):
            return lambda scope, root, out: _clone(node)
        return lambda scope, root, out: node

    # ExprContext: what an expression may ask the compiler while it is parsed.

    def param(self, name: str) -> str | None:
        return self.param_values.get(name)

    def let(self, name: str) -> Eval | None:
        return self.lets.get(name)

    def check_source(self, path_text: str, offset: int) -> None:
        if self._expr_where is None:
            return
        self._check_source(parse_path(path_text), self._expr_where, self._scope_list)

    def _template(self, text: str, where: YamlPath, scope_list: str | None) -> Getter:
        try:
            parsed = list(Formatter().parse(text))
        except ValueError as exc:
            raise self.error(f"bad template: {exc} (write {{{{ and }}}} for literal braces)", where) from None
        pieces: list[tuple[str, Getter | None, str]] = []
        for literal, field, spec, conv in parsed:
            if field is None:
                pieces.append((literal, None, ""))
                continue
            if conv:
                raise self.error(f"template placeholder {{{field}!{conv}}}: conversions are not supported",
                                 where)
            if not field.strip():
                raise self.error("template has an empty placeholder {}; name a source path inside", where)
            getter = compile_getter(self._path(field, where, scope_list))
            if spec:
                try:
                    format(0, spec)
                except ValueError:
                    try:
                        format("", spec)
                    except ValueError as exc:
                        raise self.error(f"bad format {spec!r} in placeholder {{{field}}}: {exc}",
                                         where) from None
            pieces.append((literal, getter, spec or ""))
        frozen = tuple(pieces)
        mark = self.decimal_mark

        def render(scope: Any, root: Any) -> Any:
            out: list[str] = []
            filled = False
            for literal, get, spec in frozen:
                out.append(literal)
                if get is None:
                    continue
                v = get(scope, root)
                if v is None or v == "":
                    continue
                if isinstance(v, dict | list):
                    raise TransformError("a template placeholder holds an object or list, not text")
                if isinstance(v, bool):
                    v = "true" if v else "false"
                filled = True
                if spec:
                    out.append(format_value(v, spec, mark))
                else:
                    out.append(v if isinstance(v, str) else _text_of(v))
            return "".join(out) if filled else None

        return render

    def lookup_table(self, name: str) -> LookupTable:
        return self.tables.get(name)

    def _transform(self, item: Any, where: YamlPath) -> Fn:
        """One chain step: `trim`, `truncate: 40`, `round: {places: 2, mode: half_up}`."""
        if isinstance(item, str):
            name, raw = item, _NO_ARGS
        elif isinstance(item, dict) and len(item) == 1:
            name, raw = next(iter(item.items()))
        else:
            raise self.error("a transform is a name (trim) or a one-key object "
                             "(round: {places: 2, mode: half_up})", where)
        tdef = TRANSFORMS.get(name)
        named = (*where, name) if isinstance(item, dict) else where
        if tdef is None:
            raise self.error(f"unknown transform {name!r}{_suggest(name, TRANSFORMS)} "
                             f"(see `erphub mapping transforms`)", named)
        if name == "map" and isinstance(raw, dict) and isinstance(raw.get("values"), dict):
            raw = {**raw, "values": self._keys_as_written(raw["values"], (*named, "values"))}
        args: Any = None
        if tdef.args is None:
            if raw is not _NO_ARGS and raw is not None:
                raise self.error(f"transform {name!r} takes no arguments", named)
        else:
            positional = False
            if raw is _NO_ARGS or raw is None:
                raw = {}
            if not isinstance(raw, dict):
                if tdef.positional is None:
                    raise self.error(f"transform {name!r} takes its arguments as an object: "
                                     f"{name}: {{{tdef.signature()}}}", named)
                raw, positional = {tdef.positional: raw}, True
            try:
                args = tdef.args.model_validate(raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                arg = str(err["loc"][0]) if err["loc"] else ""
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "missing":
                    msg = f"missing argument {arg!r} ({name}: {{{tdef.signature()}}})"
                    extras = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden" and e["loc"]]
                    close = difflib.get_close_matches(arg, extras, n=1)
                    if close:
                        msg += f"; is {close[0]!r} a misspelling of it?"
                elif err["type"] == "extra_forbidden":
                    allowed = [f.alias or n for n, f in tdef.args.model_fields.items()]
                    msg = (f"unknown argument {arg!r}{_suggest(arg, allowed)} "
                           f"(arguments: {', '.join(allowed)})")
                else:
                    msg = f"bad argument {arg!r} for {name}: {msg}"
                at = named if positional or err["type"] == "missing" else self._data_path((*named, arg))
                raise self.error(msg, at or named) from None
        try:
            return tdef.build(args, self)
        except TableArgError as exc:
            line, column = self.locator.find(named)
            used = f"{self.file}:{line}:{column} {dotted(named)}" if line else f"{self.file} {dotted(named)}"
            raise MappingError(f"{exc} (table used at {used})", file=exc.file, line=exc.line) from None
        except ArgError as exc:
            at = named if exc.arg is None or not isinstance(raw, dict) else self._data_path((*named, exc.arg))
            raise self.error(str(exc), at or named) from None

    def _keys_as_written(self, values: dict[str, Any], where: YamlPath) -> dict[str, Any]:
        """Value-map keys as the text in the file: YAML reads `010` as 10, `1.10` as 1.1 and `true` as
        a boolean, and a map compared against those would never match the code the author wrote."""
        out: dict[str, Any] = {}
        for key, value in values.items():
            written = self._written_key(key, (*where, key))
            if written in out:
                raise self.error(f"value map has the key {written!r} twice", (*where, key))
            out[written] = value
        return out

    def _written_key(self, key: str, where: YamlPath) -> str:
        _, locator, lines = self._origin(where)
        if where not in locator.positions:
            return key
        line, column = locator.positions[where]
        if not 0 < line <= len(lines):
            return key
        rest = lines[line - 1][column - 1:]
        if not rest or rest[0] in "'\"!&*?|>[{":
            return key  # quoted or tagged: YAML already kept it as text
        m = _PLAIN_KEY.match(rest)
        if m is None:
            raise self.error(f"cannot read the value-map key {key!r} as text; quote it", where)
        token = m.group(1).rstrip()
        return token if token != key else key

    def _chain(self, fs: FieldSpec, where: YamlPath) -> list[Fn]:
        steps = [(item, (*where, "transforms", i)) for i, item in enumerate(fs.transforms)]
        if fs.map is not None:
            steps.append(({"map": fs.map}, where))
        if fs.lookup is not None:
            steps.append(({"lookup": fs.lookup}, where))
        fns: list[Fn] = []
        failed = 0
        for item, at in steps:  # every bad transform of the field is reported, not only the first
            try:
                fns.append(self._transform(item, at))
            except MappingError as exc:
                self.collect(exc)
                failed += 1
        if failed:
            raise _Reported()
        return fns

    def _checks(self, fs: FieldSpec, where: YamlPath, required: bool = False) -> list[tuple[str, Check]]:
        try:
            return compile_checks(fs.validate_, required=required)
        except ArgError as exc:
            raise self.error(str(exc), self._data_path((*where, "validate", exc.arg or ""))) from None

    def _value_field(self, name: str, fs: FieldSpec, where: YamlPath, scope_list: str | None) -> ValueField:
        getter, label, key = self._source(fs, where, scope_list)
        takes_out = fs.source_kind in ("expr", "cases")
        chain = tuple(self._chain(fs, where))
        when = self._condition(fs.when, (*where, "when"), scope_list) if fs.when is not None else None
        is_key = scope_list is None and self._is_key(name)
        checks = self._checks(fs, where, required=is_key)
        required = any(rule == "required" for rule, _ in checks)
        return ValueField(
            name=name, parts=tuple(name.split(".")), key=key, getter=None if key is not None else getter,
            has_default=fs.has("default"), default=fs.default, chain=chain, when=when,
            required=f"required value is missing (source: {label})" if required else None,
            checks=tuple(check for rule, check in checks if rule != "required"), omit_if_null=fs.omit_if_null,
            takes_out=takes_out, finite=fs.source_kind == "const" and not chain,
        )

    def _is_key(self, name: str) -> bool:
        return isinstance(self.data, dict) and self.data.get("key") == name

    def _child(self, name: str, fs: FieldSpec, where: YamlPath, scope_list: str | None) -> ChildField:
        assert fs.each is not None and fs.from_ is not None
        if fs.transforms or fs.map is not None or fs.lookup is not None or fs.has("default"):
            raise self.error("a child collection (each) takes no transforms, map, lookup or default; "
                             "put them on the line fields", where)
        path = self._path(fs.from_, (*where, "from"), scope_list)
        line_scope = path.head or ""
        each_where = (*where, "each")
        line_filters = self._filters(fs.each.filter, (*each_where, "filter"), line_scope)
        checks = self._checks(fs, where)
        required = any(rule == "required" for rule, _ in checks)
        return ChildField(
            name=name, parts=tuple(name.split(".")), getter=compile_getter(path), source=fs.from_,
            when=self._condition(fs.when, (*where, "when"), scope_list) if fs.when is not None else None,
            line_filters=tuple(pred for pred, _ in line_filters),
            items=tuple(self._fields(fs.each.fields, (*each_where, "fields"), line_scope, name)),
            required=f"required value is missing (source: {fs.from_})" if required else None,
            checks=tuple(check for rule, check in checks if rule != "required"),
        )

