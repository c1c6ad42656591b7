"""`erphub status` (a run in progress, the last error, the run id), `erphub logs RUN_ID` from the
rotated log file, and `--log-level` / `ERPHUB_LOG_LEVEL`, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from erphub.store import Store


def write_config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "customer.yaml").write_text(textwrap.dedent("""\
        source: customer
        target: customer
        key: number
        fields:
          number: {from: customer_code}
        """), encoding="utf-8")
    config = tmp_path / "conf" / "erphub.yaml"
    config.parent.mkdir()
    config.write_text(textwrap.dedent(f"""\
        store: {{url: "sqlite:///{tmp_path}/erphub.db"}}
        systems:
          crm: {{connector: memory, settings: {{system: crm, entities: {{customer: customer_code}}}}}}
          erp: {{connector: memory, settings: {{system: erp, entities: {{customer: number}}}}}}
        pipelines:
          customers:
            source: {{system: crm, entity: customer}}
            target: {{system: erp, entity: customer}}
            mapping: {tmp_path}/customer.yaml
            schedule: "0 * * * *"
        """) + extra, encoding="utf-8")
    return config


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ERPHUB_", "PROMETHEUS_"))}
    return subprocess.run([sys.executable, "-m", "erphub.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, env={**environ, **(env or {})}, timeout=120)


def in_process(*args: str) -> Result:
    from erphub.cli.main import app

    return CliRunner().invoke(app, list(args))


def test_status_shows_the_running_run_the_last_error_and_run_ids(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = Store(f"sqlite:///{tmp_path}/erphub.db")
    ok = store.start_run("customers", "manual", None)
    store.finish_run(ok, status="success", counts={"read": 2}, error=None, cursor_after=None)
    failed = store.start_run("customers", "schedule", None)
    store.finish_run(failed, status="failed", counts={}, error="AuthError: [erp] login failed", cursor_after=None)
    running = store.start_run("customers", "webhook", None)  # in progress: no finish
    store.close()

    result = in_process("status", "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["pipelines"]
    assert row["running"]["run_id"] == running and row["running"]["trigger"] == "webhook"
    assert row["running"]["started_at"]
    assert row["last_run"]["run_id"] == failed and row["last_run"]["status"] == "failed"
    assert row["last_error"] == {"run_id": failed, "error": "AuthError: [erp] login failed",
                                 "finished_at": row["last_run"]["finished_at"]}

    table = in_process("status", "-c", str(config)).stdout
    assert running[:8] in table and failed in table and "login" in table
    assert "never" not in table


def test_logs_prints_one_runs_lines_across_rotated_files_and_the_level_is_chosen(tmp_path: Path) -> None:
    # A tiny rotation size over a file already near it: the run's lines spread over erphub.log, .1, ...
    config = write_config(tmp_path, "logging: {file: ../logs/erphub.log, max_bytes: 1024, backups: 20}\n")
    log_dir = tmp_path / "logs"  # relative to the config file's folder, not the working folder
    log_dir.mkdir()
    (log_dir / "erphub.log").write_text(json.dumps({"event": "older", "pad": "x" * 900}) + "\n")
    result = cli(tmp_path, "run", "customers", "--engine", "plain", "--json", "-c", str(config),
                 "--log-format", "console", "--log-level", "info", env={"ERPHUB_LOG_LEVEL": "ERROR"})
    assert result.returncode == 0, result.stderr
    runs = [json.loads(result.stdout)[0]["run_id"]]
    assert (log_dir / "erphub.log").exists() and (log_dir / "erphub.log.1").exists()
    # The file is JSON whatever the terminal format; the flag (info) won over ERPHUB_LOG_LEVEL (ERROR).
    every = [json.loads(line) for f in sorted(log_dir.iterdir()) for line in f.read_text().splitlines()]
    assert "info" in {line.get("level") for line in every}

    shown = cli(tmp_path, "logs", runs[0], "-c", str(config))
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert {line["run_id"] for line in lines} == {runs[0]}
    assert [line["event"] for line in lines if line["event"].startswith("run ")] == ["run started", "run finished"]

    # ERPHUB_LOG_LEVEL when no flag: WARNING drops the run's info lines, so logs finds none.
    quiet = cli(tmp_path, "run", "customers", "--engine", "plain", "--json", "-c", str(config),
                env={"ERPHUB_LOG_LEVEL": "WARNING"})
    run_id = json.loads(quiet.stdout)[0]["run_id"]
    missing = cli(tmp_path, "logs", run_id, "-c", str(config))
    assert missing.returncode == 1 and f"no log lines for run {run_id}" in missing.stderr


@pytest.mark.parametrize("args, env", [(["--log-level", "LOUD"], {}), ([], {"ERPHUB_LOG_LEVEL": "LOUD"})])
def test_a_bad_log_level_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                          env: dict[str, str]) -> None:
    config = write_config(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = in_process("run", "customers", "--engine", "plain", "-c", str(config), *args)
    assert result.exit_code == 2
    assert "--log-level must be one of DEBUG, INFO, WARNING, ERROR, not 'LOUD'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
