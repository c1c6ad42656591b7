"""`erphub dlq list|show|replay|discard`: the records that could not be delivered, and what to do with them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from erphub.cli.options import (
    DEFAULT_CONFIG,
    MAX_ID,
    ConfigOption,
    JsonOption,
    WideOption,
    open_hub,
    operator_name,
    setup_logging,
)
from erphub.cli.output import err, fail, out, print_json, results_table, show_wide, user_errors
from erphub.core.errors import RunFailed

dlq_app = typer.Typer(help="Inspect, replay and discard dead letters.", no_args_is_help=True)


STATUSES = ("open", "replayed", "resolved", "discarded", "all")
MAX_LIST = 100_000
LetterId = Annotated[int, typer.Argument(help="Dead letter id.", min=1, max=MAX_ID)]
LetterIds = Annotated[list[int], typer.Argument(help="Dead letter ids.", min=1, max=MAX_ID)]


@dlq_app.command("list")
def dlq_list(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline (one the config names).")] = None,
    state: Annotated[str, typer.Option("--status", help="open, replayed, resolved, discarded or all.")] = "open",
    limit: Annotated[int, typer.Option(help="At most this many.", min=1, max=MAX_LIST)] = 100,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List dead letters (open ones by default); says so when there are more than --limit."""
    if state not in STATUSES:
        raise fail(f"error: --status: {state!r} is not one of {', '.join(STATUSES)}", 2)
    with user_errors(), open_hub(config) as hub:
        if pipeline is not None and pipeline not in hub.config.hub.pipelines:
            known = ", ".join(sorted(hub.config.hub.pipelines)) or "none"
            raise fail(f"error: --pipeline: unknown pipeline {pipeline!r} (known: {known})", 2)
        letters = hub.store.list_dead_letters(pipeline=pipeline, status=None if state == "all" else state,
                                              limit=limit + 1)
    truncated = len(letters) > limit
    letters = letters[:limit]
    if truncated:  # on stderr, so --json stays one JSON document
        err.print(f"showing the first {limit} dead letters; there are more (raise --limit)", markup=False)
    if as_json:
        print_json([letter.summary() for letter in letters])
        return
    table = Table(title=f"dead letters ({state})" + (f", first {limit}" if truncated else ""))
    columns = ("id", "pipeline", "source id", "code", "message") if not show_wide(wide) else (
        "id", "pipeline", "source id", "stage", "code", "field", "message", "attempts", "updated")
    for column in columns:
        # ids are what an operator copies into `dlq show|replay|discard`: never cut
        table.add_column(column, no_wrap=column in ("id", "source id"), overflow="fold")
    for letter in letters:
        cells = {"id": str(letter.id), "pipeline": letter.pipeline, "source id": letter.source_id,
                 "stage": letter.stage, "code": letter.error_code, "field": letter.field or "",
                 "message": letter.message[:80], "attempts": str(letter.attempts),
                 "updated": letter.updated_at.strftime("%Y-%m-%d %H:%M:%S")}
        table.add_row(*(cells[c] for c in columns))
    out.print(table)


@dlq_app.command("show")
def dlq_show(letter_id: LetterId, config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Show one dead letter whole: source payload, mapped payload, why it failed, and who decided what."""
    with user_errors(), open_hub(config) as hub:
        letter = hub.store.get_dead_letter(letter_id)
        audit = hub.store.dead_letter_audit(letter_id) if letter is not None else []
    if letter is None:
        raise fail(f"error: letter_id: no dead letter with id {letter_id}", 2)
    shown = {**letter.as_dict(), "audit": audit}
    if as_json:
        print_json(shown)
        return
    out.print_json(json.dumps(shown, ensure_ascii=False, default=str))


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (default: all open of --pipeline).",
                                                    min=1, max=MAX_ID)] = None,
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
        if pipeline is not None:
            hub.config.pipeline(pipeline)  # an unknown name is an error naming the known ones, not "nothing"
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
def dlq_discard(ids: LetterIds,
                reason: Annotated[str, typer.Option("--reason", help="Why they must not be sent (kept in the audit).")],
                config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Close dead letters without delivering them: a person decided they must not be sent, and says why.

    The reason and the operator's user name are kept in the audit that `erphub dlq show` prints."""
    if not reason.strip():
        raise fail("error: --reason: say why these dead letters must not be sent", 2)
    with user_errors(), open_hub(config) as hub:
        done = hub.store.discard_dead_letters(ids, reason=reason.strip(), operator=operator_name())
    missing = sorted(set(ids) - set(done))
    if as_json:
        print_json({"discarded": done, "not_open": missing})
    else:
        out.print(f"discarded {len(done)}")
    if missing:
        raise fail(f"error: ids: not open dead letters: {', '.join(map(str, missing))}", 2)
