"""`erphub dlq list|show|replay|discard`: the records that could not be delivered, and what to do with them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, JsonOption, open_hub, setup_logging
from erphub.cli.output import err, fail, out, print_json, results_table, user_errors
from erphub.core.errors import RunFailed

dlq_app = typer.Typer(help="Inspect, replay and discard dead letters.", no_args_is_help=True)


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
    kept: Annotated[bool, typer.Option("--kept", help="Replay the payloads kept at failure time instead of "
                                                      "re-reading each source record.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Deliver dead letters again: each source record re-read by id where the source can (so a fix made in
    the source is used), a record gone from the source closed as source_deleted. Exit 1 when letters stay open.
    """
    if not ids and not pipeline:
        raise fail("error: name dead letter ids or --pipeline", 2)
    from erphub.engine import replay

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
                outcome = replay(hub.pipeline(name), hub.store, chosen, kept=kept)
            except RunFailed as exc:
                failed = True
                err.print(f"replay failed: {exc}", markup=False, soft_wrap=True)
                continue
            results.append(outcome.as_dict())
            if outcome.failed:
                failed = True
                results[-1]["status"] = "failed"
                shown = ", ".join(map(str, outcome.failed[:20])) + (" ..." if len(outcome.failed) > 20 else "")
                err.print(f"{name}: {len(outcome.failed)} dead letters stayed open (ids {shown})",
                          markup=False, soft_wrap=True)
    if as_json:
        print_json(results)
    else:
        out.print(results_table(results, title="erphub replays") if results else "nothing to replay")
        for result in results:
            out.print(f"{result['pipeline']}: {result['letters']} letters from the {result['source']} records, "
                      f"{result['source_deleted']} closed as source_deleted, {result['failed']} still open",
                      markup=False)
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
