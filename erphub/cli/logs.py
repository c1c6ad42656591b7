"""`erphub logs RUN_ID`: the lines of one run from the log file (`logging.file`), oldest first.

A run's lines are the ones erphub logged inside it (their `run_id`) and the ones Prefect logged for
its flow run: erphub's lines under Prefect carry the `flow_run_id`, and Prefect's lines carry it too
(their `flow_run_name` is PIPELINE-RUN_ID once the flow has named itself). Rotated files
(PATH.N ... PATH.1) are read before PATH, so a run that straddles a rotation reads in order.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, log_file
from erphub.cli.output import fail, user_errors


def log_files(path: Path) -> list[Path]:
    """PATH's rotated files, oldest first, then PATH itself (those that exist)."""
    rotated = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
                     key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*rotated, *([path] if path.exists() else [])]


def _json_lines(files: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # not one of erphub's JSON lines (a crash dump, a foreign writer)
                if isinstance(line, dict):
                    yield raw.rstrip("\n"), line


def run_lines(files: list[Path], run_id: str) -> Iterator[str]:
    # First pass: the Prefect flow runs this run ran in; second: every line of the run or of those.
    flow_runs = {str(line["flow_run_id"]) for _, line in _json_lines(files)
                 if line.get("run_id") == run_id and line.get("flow_run_id")}
    for raw, line in _json_lines(files):
        if (line.get("run_id") == run_id or str(line.get("flow_run_id")) in flow_runs
                or str(line.get("flow_run_name", "")).endswith(f"-{run_id}")):
            yield raw


def logs(
    run_id: Annotated[str, typer.Argument(help="The run id (erphub status, erphub dlq show, a log line).")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Print one run's log lines (JSON, one per line) from the log file. Exit 1 when there are none."""
    from erphub.config.loader import load_config

    with user_errors():
        loaded = load_config(config)
        path = log_file(loaded)
        if path is None:
            raise loaded.error("no log file configured: set logging.file to search a run's lines", "logging")
    found = 0
    for line in run_lines(log_files(path), run_id):
        sys.stdout.write(line + "\n")
        found += 1
    if not found:
        raise fail(f"no log lines for run {run_id} in {path}", 1)
