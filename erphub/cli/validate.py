"""`erphub validate`: the config, every mapping it names, and what each connector can do."""

from __future__ import annotations

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, JsonOption, open_hub
from erphub.cli.output import out, print_json, user_errors


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
