"""`erphub mapping ...`: check mapping files, try them on sample records, list the transforms.

A mistake in a mapping (or a config) prints one `file:line:col: field: message` line to stderr
and exits 2, without a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from erphub.cli.output import fail
from erphub.core.errors import MappingError, UserInputError
from erphub.core.limits import LimitExceeded, load_json, size_problem
from erphub.core.records import Direction, EntitySpec
from erphub.mappings.compiler import compile_mapping
from erphub.mappings.expressions import describe_functions
from erphub.mappings.lookups import LookupTables, lookups_beside
from erphub.mappings.plan import Rejected
from erphub.mappings.report import dumps, outcome_dict, outcome_text, unwrap_record
from erphub.mappings.transforms import TRANSFORMS

mapping_app = typer.Typer(
    help="Check, test and list mapping transforms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

LookupsOpt = Annotated[
    Path | None, typer.Option("--lookups", help="folder of lookup CSVs (default: the config's `lookups:`, "
                                                "else the lookups/ folder beside the mapping)")
]


def _fail(exc: UserInputError) -> typer.Exit:
    return fail(exc.render(), 2)  # `file:line:col: field: message`, the form mapping authors grep for


def _all_mapping_files() -> list[Path]:
    """The deployment's mappings: `./mappings/` of the current folder, never the installed package's."""
    folder = Path.cwd() / "mappings"
    found = sorted(p for p in folder.rglob("*.yaml") if "samples" not in p.parts) if folder.is_dir() else []
    if not found:
        raise MappingError(f"no mapping files under {folder}; name the files, or give --config FILE to check "
                           "the mappings its pipelines use", field="files")
    return found


class _Tables:
    """One LookupTables per folder: `--lookups` when given, else the folder beside each mapping."""

    def __init__(self, override: Path | None) -> None:
        self.override = override
        self._by_dir: dict[Path, LookupTables] = {}

    def for_dir(self, directory: Path) -> LookupTables:
        folder = self.override or directory
        if folder not in self._by_dir:
            self._by_dir[folder] = LookupTables(folder)
        return self._by_dir[folder]

    def beside(self, mapping: Path) -> LookupTables:
        return self.for_dir(lookups_beside(mapping))


PipelineSpecs = tuple[str, Path, EntitySpec | None, EntitySpec | None, str, dict[str, Any], Path]


def _pipeline_specs(config_path: Path) -> Iterator[PipelineSpecs]:
    """(pipeline, mapping file, source spec, target spec, note) for each pipeline of a config.

    Schemas come from the connectors themselves (built, not connected). A connector that is not
    available yet leaves that side unchecked, and the note says so.
    """
    from erphub.config.loader import load_config
    from erphub.runtime import Hub

    config = load_config(config_path)
    with Hub(config) as hub:  # builds connectors to read their schemas; never connects
        for name in config.hub.pipelines:
            specs: list[EntitySpec | None] = []
            notes: list[str] = []
            for side, direction in (("source", Direction.READ), ("target", Direction.WRITE)):
                try:
                    specs.append(hub.entity_spec(name, side, direction))
                except UserInputError as exc:
                    if "not installed" in exc.message:
                        specs.append(None)
                        notes.append(f"{side} schema not checked ({exc.message})")
                    else:
                        raise
            params = dict(config.hub.pipelines[name].params)
            yield (name, config.mapping_path(name), specs[0], specs[1], "; ".join(notes), params,
                   config.lookups_dir(name))


@mapping_app.command("check")
def check(
    files: Annotated[list[Path] | None,
                     typer.Argument(help="mapping files (default: all under ./mappings/)")] = None,
    config: Annotated[Path | None,
                      typer.Option("--config", "-c",
                                   help="config whose pipelines name the mappings and connectors")] = None,
    lookups: LookupsOpt = None,
) -> None:
    """Compile mappings; with --config, against the schemas the pipelines' connectors declare."""
    tables = _Tables(lookups)
    checked = 0
    try:
        if config is not None:
            wanted = {p.resolve() for p in files} if files else None
            for name, path, source, target, note, params, lookups_dir in _pipeline_specs(config):
                if wanted is not None and path.resolve() not in wanted:
                    continue
                plan = compile_mapping(path, source=source, target=target, tables=tables.for_dir(lookups_dir),
                                       params=params)
                suffix = f"  [{note}]" if note else ""
                typer.echo(f"ok  {path}  ({name}: {plan.source_entity} -> {plan.target_entity}){suffix}")
                checked += 1
        else:
            for path in files or _all_mapping_files():
                plan = compile_mapping(path, tables=tables.beside(path))
                typer.echo(f"ok  {path}  ({plan.source_entity} -> {plan.target_entity})")
                checked += 1
    except UserInputError as exc:
        raise _fail(exc) from None
    if checked == 0:
        raise fail("no mapping files found", 2)
    typer.echo(f"{checked} mapping(s) compiled")


def _read_records(path: Path) -> list[Any]:
    """The sample records, under the limits every input path shares (size, nesting)."""
    try:
        problem = size_problem(path.stat().st_size)
        if problem:
            raise MappingError(f"input file too large: {problem}", file=path, field="--input")
        data = load_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError("input file not found", file=path, field="--input") from None
    except IsADirectoryError:
        raise MappingError("input is a folder, not a JSON file", file=path, field="--input") from None
    except LimitExceeded as exc:
        raise MappingError(f"input refused: {exc}", file=path, field="--input") from None
    except json.JSONDecodeError as exc:
        raise MappingError(f"invalid JSON: {exc.msg}", file=path, line=exc.lineno, column=exc.colno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read input: {exc}", file=path, field="--input") from None
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        return list(data["records"])
    if isinstance(data, list):
        return data
    return [data]


@mapping_app.command("test")
def test(
    file: Annotated[Path, typer.Argument(help="the mapping file")],
    input: Annotated[Path, typer.Option("--input", "-i", help="JSON file: a list of source records")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document instead of text")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="exit 1 when any record was rejected (for CI)")] = False,
    param: Annotated[list[str] | None, typer.Option("--param", "-p",
                                                    help="NAME=VALUE for ${param:NAME} (repeatable)")] = None,
    lookups: LookupsOpt = None,
) -> None:
    """Apply a mapping to sample records: each mapped record, each rejection and skip with its reason."""
    params: dict[str, str] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise fail(f"--param {item!r}: write NAME=VALUE", 2)
        params[name.strip()] = value
    try:
        plan = compile_mapping(file, lookups_dir=lookups or lookups_beside(file), params=params)
        records = _read_records(input)
    except UserInputError as exc:
        raise _fail(exc) from None
    counts = {"mapped": 0, "rejected": 0, "skipped": 0}
    results = []
    for index, item in enumerate(records):
        label, data = unwrap_record(item)
        outcome = plan.apply(data)
        try:
            kind = outcome_dict(outcome)["outcome"]
        except (RecursionError, ValueError) as exc:  # a mapped value that cannot be written as JSON
            outcome = Rejected("", f"the mapped record cannot be written as JSON: {exc}", "input")
            kind = "rejected"
        counts[kind] += 1
        if as_json:
            results.append({"index": index, "id": label or None, **outcome_dict(outcome)})
        else:
            _echo(outcome_text(index, label, outcome))
    if as_json:
        _echo(dumps({"mapping": str(file), "source": plan.source_entity, "target": plan.target_entity,
                     "counts": counts, "results": results}))
    else:
        typer.echo(f"{len(records)} record(s): {counts['mapped']} mapped, {counts['rejected']} rejected, "
                   f"{counts['skipped']} skipped")
    if strict and counts["rejected"]:
        raise typer.Exit(1)


def _echo(text: str) -> None:
    """Print what a record holds, even a lone surrogate (written as \\udxxx), never a traceback."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    typer.echo(text)


@mapping_app.command("transforms")
def transforms() -> None:
    """List every transform, every expression function and the other field sources, each with an example."""
    typer.echo("Transforms (in `transforms:` lists):")
    for name in sorted(TRANSFORMS):
        tdef = TRANSFORMS[name]
        sig = tdef.signature()
        typer.echo(f"{name}({sig})" if sig else name)
        typer.echo(f"    {tdef.summary}")
        typer.echo(f"    e.g. {tdef.example}")
    typer.echo("")
    typer.echo("Expression functions (in `expr:`, `cases:` `if:`, `let:` and text conditions):")
    for fdef in describe_functions():
        lo, hi = fdef.arity
        typer.echo(f"{fdef.name}()  [{lo if lo == hi else f'{lo}..{hi if hi is not None else chr(8734)}'} argument(s)]")
        typer.echo(f"    {fdef.summary}")
        typer.echo(f"    e.g. {fdef.example}")
    typer.echo("")
    typer.echo("Field sources and file keys:")
    for line in _LANGUAGE:
        typer.echo(line)


_LANGUAGE = (
    "expr: \"round(qty * price / (1 + tax_rate / 100), 2)\"   arithmetic (+ - * / %), comparisons, and/or/not,",
    "    if C then A else B, 'text' & 'joined', lists [a, b], references to source paths, $.root paths,",
    "    target.FIELD (written earlier), let names and ${param:NAME}",
    "cases: [{if: \"amount >= 10000\", then: A}, {if: \"amount > 0\", then: {expr: \"'B' & grade\"}}, {else: C}]",
    "let: {net: \"price / (1 + tax_rate / 100)\"}      a named expression; use it as `net` in any field",
    "params: {org_number: \"100\"}   defaults for ${param:org_number}; a pipeline's `params:` wins",
    "include: [shared/kingdee_org.yaml]   params, let and fields from a fragment file (the mapping's own win)",
    "decimal: comma   number text writes a decimal comma (12,50; 1.234,56); default point (1,234.56)",
    "when: \"amount > 0 and currency == 'CNY'\"   a condition may also be an expression",
)
