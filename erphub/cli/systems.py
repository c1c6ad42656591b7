"""`erphub systems check`: connect, authenticate and read one page from each configured system."""

from __future__ import annotations

from typing import Annotated

import typer

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, JsonOption, open_hub
from erphub.cli.output import fail, out, print_json, user_errors
from erphub.core.errors import ErphubError

systems_app = typer.Typer(help="Check the configured systems.", no_args_is_help=True)


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
