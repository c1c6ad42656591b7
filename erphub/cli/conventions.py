"""What every erphub command shares on the command line: `erphub --version`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer


def erphub_version() -> str:
    try:
        return version("erphub")
    except PackageNotFoundError:  # a checkout on sys.path without an install
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"erphub {erphub_version()}")
        raise typer.Exit(0)


def root_options(
    show_version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                               help="Print the version and exit.")] = False,
) -> None:
    """erphub: keep a CRM and the ERP / finance systems behind it in agreement."""


def hide_flag_types() -> None:
    """Help shows `--full` alone, not `--full <bool>`: a flag takes no value, so it has no type to show.

    Typer 0.29 prints a type beside every option, flags included; this is its one hook for that column.
    """
    from typer.core import TyperOption

    original = TyperOption.display_type_rich
    if getattr(original, "_erphub_flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else original(self, ctx)

    display_type_rich._erphub_flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
