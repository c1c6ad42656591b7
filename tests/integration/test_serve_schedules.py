"""Schedules in `erphub serve`: deployments built from config, and (slow) a real cron run.

The slow test starts `erphub serve` with schedules: it launches a Prefect server child, serves a
deployment per scheduled pipeline, and a `* * * * *` pipeline runs within the next minute. SIGTERM
stops everything (the Prefect child too) with exit code 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from erphub.config.loader import load_config
from tests.prefect_template import seed_prefect_home

ROOT = Path(__file__).resolve().parents[2]
FINISHED_RUNS = sqlalchemy.text(
    "select trigger, status from erphub_runs where pipeline='customers' and finished_at is not null")


def write_config(tmp_path: Path, cron: str) -> Path:
    (tmp_path / "customer.yaml").write_text(textwrap.dedent("""\
        source: customer
        target: customer
        key: number
        fields:
          number: {from: customer_code}
          name: {from: customer_name}
        """), encoding="utf-8")
    config = tmp_path / "erphub.yaml"
    config.write_text(textwrap.dedent(f"""\
        version: 1
        store: {{url: "sqlite:///{tmp_path}/erphub.db"}}
        systems:
          crm: {{connector: memory, settings: {{system: crm, entities: {{customer: customer_code}}}}}}
          erp: {{connector: memory, settings: {{system: erp, entities: {{customer: number}}}}}}
        pipelines:
          customers:
            source: {{system: crm, entity: customer}}
            target: {{system: erp, entity: customer}}
            mapping: customer.yaml
            schedule: "{cron}"
          unscheduled:
            source: {{system: crm, entity: customer}}
            target: {{system: erp, entity: customer}}
            mapping: customer.yaml
          switched_off:
            source: {{system: crm, entity: customer}}
            target: {{system: erp, entity: customer}}
            mapping: customer.yaml
            schedule: "0 * * * *"
            enabled: false
        """), encoding="utf-8")
    return config


def test_one_deployment_per_enabled_scheduled_pipeline_one_run_at_a_time(tmp_path: Path) -> None:
    from erphub.flows.prefect_env import configure_prefect_env

    configure_prefect_env(tmp_path / "state")
    from erphub.flows.deployments import build_deployments

    loaded = load_config(write_config(tmp_path, "*/15 * * * *"))
    [deployment] = build_deployments(loaded)
    assert deployment.name == "customers"
    assert deployment.parameters == {"pipeline": "customers", "config_path": str(loaded.path),
                                     "trigger": "schedule"}
    [schedule] = deployment.schedules or []
    assert getattr(schedule.schedule, "cron", None) == "*/15 * * * *"
    limit = deployment.concurrency_options
    assert deployment.concurrency_limit == 1
    assert limit is not None and str(limit.collision_strategy.value) == "CANCEL_NEW"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.prefect
def test_serve_runs_a_cron_schedule_and_stops_cleanly(tmp_path: Path, prefect_db_template: Path) -> None:
    config = write_config(tmp_path, "* * * * *")
    # Serve's Prefect home (.erphub/prefect beside the config) holds a migrated database: a second start.
    # A first start, migrating an empty home, is test_alerts_live's.
    seed_prefect_home(tmp_path / ".erphub" / "prefect", prefect_db_template)
    port = free_port()
    prefect_home = f"PREFECT_HOME={tmp_path / '.erphub' / 'prefect'}"
    # A clean Prefect environment: erphub serve chooses PREFECT_HOME (the config's state folder, .erphub/prefect
    # beside it) and the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "erphub.cli", "serve", "--config", str(config), "--port", str(port),
         "--log-format", "json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/erphub.db")
    try:
        deadline = time.monotonic() + 200  # Prefect server start (10-30 s) + up to a minute to the tick
        runs: list[tuple[str, str]] = []
        while time.monotonic() < deadline and not runs:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            try:
                with engine.connect() as conn:
                    runs = [(r.trigger, r.status) for r in conn.execute(FINISHED_RUNS)]
            except sqlalchemy.exc.OperationalError:
                pass  # the store is not migrated yet
            time.sleep(1)
        assert runs and runs[0] == ("schedule", "success")
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health["schedules"] == "running" and health["prefect_loaded"] is True
        assert processes_with_env(prefect_home) != []  # the Prefect server child, found by its PREFECT_HOME
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
        engine.dispose()
    assert proc.returncode == 0, out[-3000:]
    assert "erphub serve stopped" in out
    assert processes_with_env(prefect_home) == []


def processes_with_env(entry: str) -> list[int]:
    """Pids whose environment holds `entry` (the Prefect server child carries our PREFECT_HOME)."""
    found = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            environ = (proc_dir / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.encode() in environ:
            found.append(int(proc_dir.name))
    return found


@pytest.mark.prefect
def test_serve_with_prefect_ui_on_serves_the_prefect_ui(tmp_path: Path, prefect_db_template: Path) -> None:
    """`serve: {prefect_ui: true}`: serve's Prefect server answers its UI at its root. Off (the default)
    it answers 404 there: asserted by tests/integration/test_alerts_live.py, whose serve has it off."""
    config = write_config(tmp_path, "0 0 1 1 *")  # never ticks during the test
    config.write_text(config.read_text(encoding="utf-8") + "serve: {prefect_ui: true}\n", encoding="utf-8")
    seed_prefect_home(tmp_path / ".erphub" / "prefect", prefect_db_template)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "erphub.cli", "serve", "--config", str(config), "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.stderr").open("wb"))
    try:
        deadline = time.monotonic() + 180  # the Prefect server's start (10-30 s here)
        health: dict[str, str] = {}
        while health.get("schedules") != "running":
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "serve.stderr").read_text()[-3000:]
            time.sleep(0.5)
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        ui = httpx.get(health["prefect_api"].removesuffix("/api") + "/", timeout=10, follow_redirects=True,
                       headers={"Accept": "text/html"})
        assert ui.status_code == 200, ui.text[:500]
        assert "text/html" in ui.headers["content-type"] and "<title>Prefect" in ui.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
