"""`erphub status`: per pipeline, the last run, its counts, the cursor and open dead letters."""

from __future__ import annotations

from rich.table import Table

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, JsonOption, open_hub
from erphub.cli.output import out, print_json, user_errors
from erphub.core.outcomes import OUTCOMES


def status(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Per pipeline: last run, outcome, counts, cursor and open dead letters."""
    with user_errors(), open_hub(config) as hub:
        rows = [{**hub.store.status(name), "enabled": p.enabled, "schedule": p.schedule}
                for name, p in hub.config.hub.pipelines.items()]
    if as_json:
        print_json({"pipelines": rows})
        return
    table = Table(title="erphub status")
    for column in ("pipeline", "last run", "status", *(c.replace("_", "-") for c in OUTCOMES),
                   "cursor", "open DLQ"):
        table.add_column(column)
    for row in rows:
        last = row["last_run"] or {}
        counts = last.get("counts", {})
        cursor = row["cursor"]["updated_at"] if row["cursor"] else "-"
        table.add_row(row["pipeline"], last.get("finished_at") or "never", last.get("status", "-"),
                      *(str(counts.get(c, 0)) for c in OUTCOMES), cursor, str(row["open_dead_letters"]))
    out.print(table)
