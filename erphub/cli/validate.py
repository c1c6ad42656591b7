"""`erphub validate`: the config, every mapping it names, and what each connector can do."""

from __future__ import annotations

from typing import Annotated

import typer

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, JsonOption, open_hub
from erphub.cli.output import err, out, print_json, user_errors

StrictOption = Annotated[bool, typer.Option("--strict", help="Warnings (a secret file others can read) are errors.")]


def validate(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False, strict: StrictOption = False) -> None:
    """Check the config, every mapping it names, and that each connector supports what is asked of it.

    Every problem of the file is shown at once; exit 2 when there is one."""
    with user_errors(), open_hub(config, strict=strict) as hub:
        checked = hub.validate()
        warnings = [w.render() for w in hub.config.warnings]
        for warning in warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        if as_json:
            print_json({"config": str(hub.config.path), "ok": True, "pipelines": checked,
                        "systems": sorted(hub.config.hub.systems), "warnings": warnings})
            return
        out.print(f"[green]OK[/green] {hub.config.path}: {len(hub.config.hub.systems)} systems, "
                  f"{len(checked)} pipelines ({', '.join(checked)})")
