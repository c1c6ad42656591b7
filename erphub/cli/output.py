"""What the CLI prints: tables and JSON on stdout, one-line errors on stderr, and the exit codes.

Exit codes: 0 the work completed (dead letters are counted, not fatal), 1 a run failed,
2 usage or config error (one line naming file, line and field; never a traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from erphub.core.errors import ConnectorError, RunFailed, StoreError, UserInputError
from erphub.core.outcomes import OUTCOMES

# Off a terminal rich assumes 80 columns; tables of counts read better wider.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)



def fail(message: str, code: int) -> typer.Exit:
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn erphub's errors into one readable line and the documented exit code."""
    try:
        yield
    except UserInputError as exc:
        problems = getattr(exc, "problems", None) or [exc]  # ConfigProblems: every one, each on its line
        raise fail("\n".join(f"error: {problem.render()}" for problem in problems), 2) from None
    except RunFailed as exc:
        raise fail(f"run failed: {exc}", 1) from None
    except (ConnectorError, StoreError) as exc:
        raise fail(f"error: {exc}", 1) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


WIDE_AT = 120  # a console this wide shows every column; narrower ones (80) the ones on-call needs


def show_wide(wide: bool, console: Console | None = None) -> bool:
    """Every column when asked (`--wide`) or when the console has the room for them."""
    return wide or (console or out).width >= WIDE_AT


# The counts a narrow table keeps: what moved and what did not arrive; the rest with --wide.
NARROW_OUTCOMES = ("read", "created", "updated", "dead_lettered")


def results_table(results: list[dict[str, Any]], title: str = "erphub runs", *, wide: bool = False) -> Table:
    every = show_wide(wide)
    outcomes = OUTCOMES if every else tuple(c for c in OUTCOMES if c in NARROW_OUTCOMES)
    table = Table(title=title)
    table.add_column("pipeline", overflow="fold")  # a name an operator copies: folded when long, never cut
    table.add_column("status", min_width=7)
    for column in outcomes:
        header = "DLQ" if column == "dead_lettered" and not every else column.replace("_", "-")
        table.add_column(header, justify="right", min_width=len(header), overflow="fold")
    if every:
        table.add_column("seconds", justify="right")
    for result in results:
        counts = result.get("counts", {})
        style = "green" if result["status"] == "success" else "red"
        cells = [result["pipeline"], f"[{style}]{result['status']}[/{style}]",
                 *(str(counts.get(c, 0)) for c in outcomes)]
        table.add_row(*cells, *([str(result.get("seconds", ""))] if every else []))
    return table
