"""`erphub conflicts list|resolve`: two-way fields both sides changed, held for a person."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from erphub.cli.options import DEFAULT_CONFIG, MAX_ID, ConfigOption, JsonOption, open_hub
from erphub.cli.output import fail, out, print_json, user_errors

conflicts_app = typer.Typer(help="Two-way conflicts held for review.", no_args_is_help=True)


@conflicts_app.command("list")
def conflicts_list(
    state: Annotated[str, typer.Option("--status", help="held, resolved or all.")] = "held",
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Fields both sides changed since they last agreed, with both values."""
    if state not in ("held", "resolved", "all"):
        raise fail(f"error: --status: {state!r} is not one of held, resolved, all", 2)
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
    conflict_id: Annotated[int, typer.Argument(help="Conflict id from `erphub conflicts list`.", min=1, max=MAX_ID)],
    take: Annotated[str, typer.Option("--take", help="source or target: whose value both sides get.")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Settle a held conflict: the chosen value is written to the side that does not have it.

    While a run of either direction is going it waits for it (up to the pipeline's busy wait)."""
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
