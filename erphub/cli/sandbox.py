"""`erphub sandbox NAME`: one sandbox in the foreground, for trying a client of your own against it."""

from __future__ import annotations

import errno
from typing import Annotated

import typer

from erphub import sandbox as sandboxes
from erphub.cli.output import fail, out


def sandbox(
    system: Annotated[str, typer.Argument(help=f"One of: {', '.join(sandboxes.available())}.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = a free one).", min=0, max=65535)] = 0,
) -> None:
    """Run one sandbox in the foreground and print its base URL and demo credentials."""
    if system not in sandboxes.available():
        raise fail(f"error: unknown sandbox {system!r}; valid sandboxes: {', '.join(sandboxes.available())}", 2)
    from erphub.sandbox.serve import run_foreground

    try:
        run_foreground(sandboxes.create(system), port, echo=out.print)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):  # the bind, before anything is served
            raise fail(f"error: --port: cannot listen on 127.0.0.1:{port}: {exc.strerror}", 2) from None
        raise
