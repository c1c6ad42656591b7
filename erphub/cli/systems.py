"""`erphub systems check` (connect, authenticate, read one page) and `erphub systems discover` (schema)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, JsonOption, open_hub, setup_logging
from erphub.cli.output import fail, out, print_json, user_errors
from erphub.core.errors import ErphubError

systems_app = typer.Typer(help="Check the configured systems and discover their schemas.", no_args_is_help=True)


@systems_app.command("check")
def systems_check(system: Annotated[str | None, typer.Argument(help="Only this system.")] = None,
                  config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Connect, authenticate and read one page from each system; OK or the exact reason."""
    results: list[dict[str, str]] = []
    with user_errors(), open_hub(config) as hub:
        setup_logging(secrets=hub.config.secret_values)  # log lines to stderr: --json prints only JSON
        names = [system] if system else sorted(hub.config.hub.systems)
        redact = hub.redactor()
        for name in names:
            if name not in hub.config.hub.systems:
                known = ", ".join(sorted(hub.config.hub.systems))
                raise fail(f"error: system: unknown system {name!r} (known: {known})", 2)
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


@systems_app.command("discover")
def systems_discover(system: Annotated[str, typer.Argument(help="The configured system to read.")],
                     entities: Annotated[list[str] | None, typer.Argument(help="Only these entities.")] = None,
                     config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Read the system's own metadata and write its schema snapshot (schema/<system>.json next to the config).

    Review and commit the snapshot: the mapping compiler then checks mappings against it (unknown
    fields, read-only targets, constants of the wrong type) instead of the connector's defaults.
    """
    from erphub.connectors.discovery import SupportsDiscovery
    from erphub.mappings.schema_check import load_snapshot, snapshot_path

    with user_errors(), open_hub(config) as hub:
        if system not in hub.config.hub.systems:
            raise fail(f"error: unknown system {system!r}; systems: {', '.join(sorted(hub.config.hub.systems))}", 2)
        connector = hub.connector(system)
        if not isinstance(connector, SupportsDiscovery):
            raise fail(f"error: connector {connector.kind!r} of system {system!r} cannot discover its schema", 2)
        offered = list(connector.entities())
        wanted = list(entities or offered)
        unknown = [e for e in wanted if e not in offered]
        if unknown:
            raise fail(f"error: system {system!r} has no entity {unknown[0]!r}; entities: {', '.join(offered)}", 2)
        try:
            found = connector.discover(wanted)
        except ErphubError as exc:
            raise fail(f"error: discovering {system!r} failed: {hub.redactor()(str(exc))}", 1) from None
        path = snapshot_path(hub.config.state_base, system)
        previous = load_snapshot(path) or {}
        snapshot = {
            "system": system,
            "connector": connector.kind,
            "discovered_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "entities": {**previous.get("entities", {}), **found},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(snapshot, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if as_json:
        print_json({"file": str(path), **snapshot})
        return
    out.print(f"wrote {path}")
    for name, entity in found.items():
        fields = entity.get("fields", {})
        custom = sorted(f for f, info in fields.items() if info.get("custom"))
        out.print(f"  {name} ({entity.get('native_name')}): {len(fields)} fields"
                  + (f", custom: {', '.join(custom)}" if custom else ""))
