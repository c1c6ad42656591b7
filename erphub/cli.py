"""The `erphub` command line: validate, run, status, dlq, systems, sandbox, mapping, serve, demo.

Exit codes: 0 the work completed (dead letters are counted, not fatal), 1 a run failed,
2 usage or config error (one line naming file, line and field; never a traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from erphub.errors import ConnectorError, ErphubError, RunFailed, StoreError, UserInputError

app = typer.Typer(help="erphub: keep a CRM and the ERP / finance systems behind it in agreement.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
dlq_app = typer.Typer(help="Inspect, replay and discard dead letters.", no_args_is_help=True)
systems_app = typer.Typer(help="Check the configured systems.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
conflicts_app = typer.Typer(help="Two-way conflicts held for review.", no_args_is_help=True)
app.add_typer(systems_app, name="systems")
app.add_typer(conflicts_app, name="conflicts")

# Off a terminal rich assumes 80 columns; tables of counts read better wider.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)

ConfigOption = Annotated[str, typer.Option("--config", "-c", help="Config file.", envvar="ERPHUB_CONFIG")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_CONFIG = "config/demo.yaml"
OUTCOME_COLUMNS = ("read", "created", "updated", "unchanged", "skipped", "dead_lettered")


def fail(message: str, code: int) -> typer.Exit:
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn erphub's errors into one readable line and the documented exit code."""
    try:
        yield
    except UserInputError as exc:
        raise fail(f"error: {exc.render()}", 2) from None
    except RunFailed as exc:
        raise fail(f"run failed: {exc}", 1) from None
    except (ConnectorError, StoreError) as exc:
        raise fail(f"error: {exc}", 1) from None


def open_hub(config: str, **kwargs: Any) -> Any:
    from config.loader import load_config
    from erphub.runtime import Hub

    return Hub(load_config(config), **kwargs)


def setup_logging(log_format: str = "auto", secrets: list[str] | None = None) -> None:
    from erphub.runner import as_log_format
    from monitoring.logging import configure_logging

    configure_logging(fmt=as_log_format(log_format), level="INFO", secrets=secrets or [])


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


# -- validate -------------------------------------------------------------------------------
@app.command()
def validate(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Check the config, every mapping it names, and that each connector supports what is asked of it."""
    with user_errors(), open_hub(config) as hub:
        checked = hub.validate()
        if as_json:
            print_json({"config": str(hub.config.path), "ok": True, "pipelines": checked,
                        "systems": sorted(hub.config.hub.systems)})
            return
        out.print(f"[green]OK[/green] {hub.config.path}: {len(hub.config.hub.systems)} systems, "
                  f"{len(checked)} pipelines ({', '.join(checked)})")


# -- run ------------------------------------------------------------------------------------
def parse_when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"error: {option}: expected an ISO date or datetime like 2026-01-31 or 2026-01-31T08:00:00Z, "
                   f"got {value!r}", 2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def results_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="erphub runs")
    table.add_column("pipeline")
    table.add_column("status")
    for column in OUTCOME_COLUMNS:
        table.add_column(column.replace("_", "-"), justify="right")
    table.add_column("seconds", justify="right")
    for result in results:
        counts = result.get("counts", {})
        style = "green" if result["status"] == "success" else "red"
        table.add_row(result["pipeline"], f"[{style}]{result['status']}[/{style}]",
                      *(str(counts.get(c, 0)) for c in OUTCOME_COLUMNS), str(result.get("seconds", "")))
    return table


@app.command()
def run(
    pipeline: Annotated[list[str] | None, typer.Argument(help="Pipelines to run.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Run every enabled pipeline.")] = False,
    since: Annotated[str | None, typer.Option(help="Re-read changes from this date (backfill).")] = None,
    until: Annotated[str | None, typer.Option(help="Stop at this date (with --since).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-read everything; only differences are written.")] = False,
    engine: Annotated[str, typer.Option(help="prefect (embedded Prefect flow) or plain (no Prefect).")] = "prefect",
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
    log_format: Annotated[str, typer.Option(help="auto, json or console.")] = "auto",
) -> None:
    """Run pipelines now. Exit 0 when every run completed (dead letters are counted), 1 when one failed."""
    if engine not in ("prefect", "plain"):
        raise fail("error: --engine must be prefect or plain", 2)
    if until and not since:
        raise fail("error: --until needs --since", 2)
    since_at, until_at = parse_when(since, "--since"), parse_when(until, "--until")
    from erphub.runner import run_pipelines

    with user_errors():
        results, failed = run_pipelines(config, pipeline or [], run_all=all_, since=since_at, until=until_at,
                                        full=full, engine=engine, log_format=log_format,
                                        progress=sys.stderr.isatty() and not as_json)
    if as_json:
        print_json(results)
    else:
        out.print(results_table(results))
    if failed:
        raise typer.Exit(1)


# -- status ---------------------------------------------------------------------------------
@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Per pipeline: last run, outcome, counts, cursor and open dead letters."""
    with user_errors(), open_hub(config) as hub:
        rows = [{**hub.store.status(name), "enabled": p.enabled, "schedule": p.schedule}
                for name, p in hub.config.hub.pipelines.items()]
    if as_json:
        print_json({"pipelines": rows})
        return
    table = Table(title="erphub status")
    for column in ("pipeline", "last run", "status", *(c.replace("_", "-") for c in OUTCOME_COLUMNS),
                   "cursor", "open DLQ"):
        table.add_column(column)
    for row in rows:
        last = row["last_run"] or {}
        counts = last.get("counts", {})
        cursor = row["cursor"]["updated_at"] if row["cursor"] else "-"
        table.add_row(row["pipeline"], last.get("finished_at") or "never", last.get("status", "-"),
                      *(str(counts.get(c, 0)) for c in OUTCOME_COLUMNS), cursor, str(row["open_dead_letters"]))
    out.print(table)


# -- dead letters ---------------------------------------------------------------------------
@dlq_app.command("list")
def dlq_list(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    state: Annotated[str, typer.Option("--status", help="open, replayed, resolved, discarded or all.")] = "open",
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """List dead letters (open ones by default)."""
    with user_errors(), open_hub(config) as hub:
        letters = hub.store.list_dead_letters(pipeline=pipeline, status=None if state == "all" else state,
                                              limit=limit)
    if as_json:
        print_json([letter.summary() for letter in letters])
        return
    table = Table(title=f"dead letters ({state})")
    for column in ("id", "pipeline", "source id", "stage", "code", "field", "message", "attempts", "updated"):
        table.add_column(column)
    for letter in letters:
        table.add_row(str(letter.id), letter.pipeline, letter.source_id, letter.stage, letter.error_code,
                      letter.field or "", letter.message[:80], str(letter.attempts),
                      letter.updated_at.strftime("%Y-%m-%d %H:%M:%S"))
    out.print(table)


@dlq_app.command("show")
def dlq_show(letter_id: Annotated[int, typer.Argument(help="Dead letter id.")],
             config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Show one dead letter whole: source payload, mapped payload and why it failed."""
    with user_errors(), open_hub(config) as hub:
        letter = hub.store.get_dead_letter(letter_id)
    if letter is None:
        raise fail(f"error: no dead letter with id {letter_id}", 2)
    if as_json:
        print_json(letter.as_dict())
        return
    out.print_json(json.dumps(letter.as_dict(), ensure_ascii=False, default=str))


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (default: all open of --pipeline).")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Replay every open dead letter of this pipeline.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Send dead letters through mapping and delivery again from their kept source payloads."""
    if not ids and not pipeline:
        raise fail("error: name dead letter ids or --pipeline", 2)
    from erphub.engine import replay_dead_letters

    results: list[dict[str, Any]] = []
    failed = False
    with user_errors(), open_hub(config) as hub:
        setup_logging(secrets=hub.config.secret_values)
        letters = hub.store.list_dead_letters(pipeline=pipeline, status="open", limit=100_000, ids=ids)
        if ids:
            missing = sorted(set(ids) - {letter.id for letter in letters})
            if missing:
                raise fail(f"error: not open dead letters: {', '.join(map(str, missing))}", 2)
        for name in sorted({letter.pipeline for letter in letters}):
            chosen = [letter.id for letter in letters if letter.pipeline == name]
            try:
                results.append(replay_dead_letters(hub.pipeline(name), hub.store, chosen).as_dict())
            except RunFailed as exc:
                failed = True
                err.print(f"replay failed: {exc}", markup=False, soft_wrap=True)
    if as_json:
        print_json(results)
    else:
        out.print(results_table(results) if results else "nothing to replay")
    if failed:
        raise typer.Exit(1)


@dlq_app.command("discard")
def dlq_discard(ids: Annotated[list[int], typer.Argument(help="Dead letter ids.")],
                config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Close dead letters without delivering them (a person decided they must not be sent)."""
    with user_errors(), open_hub(config) as hub:
        done = hub.store.discard_dead_letters(ids)
    missing = sorted(set(ids) - set(done))
    if as_json:
        print_json({"discarded": done, "not_open": missing})
    else:
        out.print(f"discarded {len(done)}" + (f"; not open: {', '.join(map(str, missing))}" if missing else ""))
    if missing:
        raise typer.Exit(2)


# -- systems --------------------------------------------------------------------------------
@systems_app.command("check")
def systems_check(system: Annotated[str | None, typer.Argument(help="Only this system.")] = None,
                  config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Connect, authenticate and read one page from each system; OK or the exact reason."""
    results: list[dict[str, str]] = []
    with user_errors(), open_hub(config) as hub:
        names = [system] if system else sorted(hub.config.hub.systems)
        redact = hub.redactor()
        for name in names:
            if name not in hub.config.hub.systems:
                raise fail(f"error: unknown system {name!r}", 2)
            try:
                hub.connector(name).check()
                results.append({"system": name, "status": "ok", "detail": ""})
            except ErphubError as exc:
                results.append({"system": name, "status": "failed", "detail": redact(str(exc))})
    if as_json:
        print_json(results)
    else:
        for result in results:
            mark = "[green]OK[/green]" if result["status"] == "ok" else "[red]FAILED[/red]"
            out.print(f"{mark} {result['system']} {result['detail']}")
    if any(r["status"] != "ok" for r in results):
        raise typer.Exit(1)


# -- serve --------------------------------------------------------------------------------
@app.command()
def serve(
    config: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[str | None, typer.Option(help="Bind address (default: serve.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port, 9464).")] = None,
    no_schedules: Annotated[bool, typer.Option("--no-schedules", help="Webhooks and /metrics only.")] = False,
    log_format: Annotated[str, typer.Option(help="auto, json or console.")] = "auto",
) -> None:
    """Schedules (Prefect deployments), the webhook receiver and /metrics, in one process."""
    from erphub.cli_serve import serve_command

    serve_command(config, host, port, no_schedules, log_format)


# -- conflicts ------------------------------------------------------------------------------
@conflicts_app.command("list")
def conflicts_list(
    state: Annotated[str, typer.Option("--status", help="held, resolved or all.")] = "held",
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Fields both sides changed since they last agreed, with both values."""
    with user_errors(), open_hub(config) as hub:
        conflicts = hub.store.list_conflicts(status=None if state == "all" else state, limit=1000)
    if as_json:
        print_json([c.as_dict() for c in conflicts])
        return
    table = Table(title=f"conflicts ({state})")
    for column in ("id", "pipeline", "source id", "target id", "field", "source value", "target value", "rule",
                   "winner"):
        table.add_column(column)
    for c in conflicts:
        table.add_row(str(c.id), c.pipeline, c.source_id, c.target_id, c.field, str(c.source_value),
                      str(c.target_value), c.rule, c.winner or "held")
    out.print(table)


@conflicts_app.command("resolve")
def conflicts_resolve(
    conflict_id: Annotated[int, typer.Argument(help="Conflict id from `erphub conflicts list`.")],
    take: Annotated[str, typer.Option("--take", help="source or target: whose value both sides get.")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Settle a held conflict: the chosen value is written to the side that does not have it."""
    if take not in ("source", "target"):
        raise fail("error: --take must be source or target", 2)
    from erphub.conflicts import resolve_conflict

    with user_errors(), open_hub(config) as hub:
        closed = resolve_conflict(hub, conflict_id, take)
    if as_json:
        print_json(closed.as_dict())
    else:
        value = closed.source_value if take == "source" else closed.target_value
        out.print(f"conflict {closed.id} resolved: {closed.field} = {value}")


# -- sandbox and demo ------------------------------------------------------------------------
@app.command()
def sandbox(
    system: Annotated[str, typer.Argument(help="jiandaoyun, kingdee, yonyou or salesforce.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = a free one).")] = 0,
) -> None:
    """Run one sandbox in the foreground and print its base URL and demo credentials."""
    import sandbox as sandboxes
    from sandbox.serve import run_foreground

    if system not in sandboxes.SANDBOXES:
        raise fail(f"error: unknown sandbox {system!r}; valid sandboxes: {', '.join(sandboxes.available())}", 2)
    run_foreground(sandboxes.create(system), port, echo=out.print)


@app.command()
def demo(
    config: ConfigOption = DEFAULT_CONFIG,
    engine: Annotated[str, typer.Option(help="prefect (default) or plain.")] = "prefect",
) -> None:
    """Start the sandboxes, sync CRM customers and orders into the ERP, run again, change a few, run again."""
    from erphub.demo import run_demo

    with user_errors():
        run_demo(config, engine=engine, console=out)


from erphub.cli_mapping import mapping_app  # noqa: E402  (sub-app defined in its own module)

app.add_typer(mapping_app, name="mapping", help="Check, test and list mapping transforms.")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
