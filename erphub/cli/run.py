"""`erphub run`: run pipelines now, from their cursors or over a backfill window."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from erphub.cli.options import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    LogFormatOption,
    LogLevelOption,
    WideOption,
)
from erphub.cli.output import fail, out, print_json, results_table, user_errors


def parse_when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"error: {option}: expected an ISO date or datetime like 2026-01-31 or 2026-01-31T08:00:00Z, "
                   f"got {value!r}", 2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run(
    pipeline: Annotated[list[str] | None, typer.Argument(help="Pipelines to run.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Run every enabled pipeline.")] = False,
    since: Annotated[str | None, typer.Option(help="Re-read changes from this date (backfill).")] = None,
    until: Annotated[str | None, typer.Option(help="Stop at this date (with --since).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-read everything; only differences are written.")] = False,
    engine: Annotated[str, typer.Option(help="prefect (embedded Prefect flow) or plain (no Prefect).")] = "prefect",
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = None,
    wide: WideOption = False,
) -> None:
    """Run pipelines now. Exit 0 when every run completed (dead letters are counted), 1 when one failed."""
    if engine not in ("prefect", "plain"):
        raise fail("error: --engine must be prefect or plain", 2)
    if until and not since:
        raise fail("error: --until needs --since", 2)
    since_at, until_at = parse_when(since, "--since"), parse_when(until, "--until")
    if since_at is not None and until_at is not None and until_at <= since_at:
        raise fail(f"error: --until: {until} is not after --since {since}", 2)
    from erphub.cli.runner import run_pipelines

    with user_errors():
        results, failed = run_pipelines(config, pipeline or [], run_all=all_, since=since_at, until=until_at,
                                        full=full, engine=engine, log_format=log_format, log_level=log_level,
                                        progress=sys.stderr.isatty() and not as_json)
    if as_json:
        print_json(results)
    else:
        out.print(results_table(results, wide=wide))
    if failed:
        raise typer.Exit(1)
