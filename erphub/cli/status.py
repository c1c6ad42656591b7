"""`erphub status`: per pipeline, a run in progress, the last finished run, its counts and error, the
cursor and open dead letters.

`last_run` is the newest *finished* run (its status and error are final); a run still going is
`running` (its id, start and trigger), so a pipeline whose first run is in progress reads "running",
not "never". `last_error` is the newest failed run's error even when a later run succeeded, with its
run id for `erphub logs RUN_ID`.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, JsonOption, open_hub
from erphub.cli.output import out, print_json, user_errors
from erphub.store import RunInfo

RECENT = 50  # runs looked at per pipeline for the newest finished and the newest failed one


def pipeline_status(base: dict[str, Any], runs: list[RunInfo]) -> dict[str, Any]:
    running = next((r for r in runs if r.finished_at is None), None)
    finished = next((r for r in runs if r.finished_at is not None), None)
    failed = next((r for r in runs if r.status == "failed"), None)
    return {
        **base,
        "running": None if running is None else {"run_id": running.id, "started_at": running.started_at.isoformat(),
                                                 "trigger": running.trigger},
        "last_run": None if finished is None else finished.as_dict(),
        "last_error": None if failed is None else {"run_id": failed.id, "error": failed.error,
                                                   "finished_at": failed.finished_at.isoformat()
                                                   if failed.finished_at else None},
    }


def status(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Per pipeline: a running run, the last run (when, outcome, id, counts), the last error, cursor, DLQ."""
    with user_errors(), open_hub(config) as hub:
        rows = [pipeline_status({**hub.store.status(name), "enabled": p.enabled, "schedule": p.schedule},
                                hub.store.recent_runs(name, limit=RECENT))
                for name, p in hub.config.hub.pipelines.items()]
    if as_json:
        print_json({"pipelines": rows})
        return
    table = Table(title="erphub status")
    for column in ("pipeline", "running (id, since, trigger)", "last run", "status", "run id", "trigger", "counts",
                   "cursor", "open DLQ", "last error (run id: error)"):
        table.add_column(column, no_wrap=column in ("pipeline", "run id"))
    for row in rows:
        last, running, error = row["last_run"] or {}, row["running"], row["last_error"]
        now = f"{running['run_id']} since {running['started_at']} ({running['trigger']})" if running else "-"
        counts = ", ".join(f"{k} {v}" for k, v in last.get("counts", {}).items() if v) or "-"
        cursor = row["cursor"]["updated_at"] if row["cursor"] else "-"
        error_text = f"{error['run_id']}: {error['error']}" if error else "-"
        table.add_row(row["pipeline"], now, last.get("finished_at") or "never", last.get("status", "-"),
                      last.get("run_id") or "-", last.get("trigger") or "-", counts, cursor,
                      str(row["open_dead_letters"]), error_text)
    out.print(table)
