"""ErphubDrift keeps paging across `erphub serve` restarts: `erphub_drift_records` comes from the store.

`erphub serve` empties the shared metrics folder when it starts, so a gauge a one-shot `erphub reconcile`
left there was gone after a restart until the next reconcile, and the alert went quiet while the drift
stayed. Real processes throughout (one-shot run and reconciles, serve started twice), SQLite tables on both
sides: a row deleted from the target behind erphub's back is the drift.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests.integration.serve_process import free_port, running_serve
from tests.unit.engine.configs import customer_mapping

PIPELINE = "mirrored_customers"


def _config(tmp: Path, port: int) -> Path:
    (tmp / "customer.yaml").write_text(customer_mapping("code", {"code": "code", "name": "name"}), encoding="utf-8")
    config = tmp / "hub.yaml"
    config.write_text(textwrap.dedent(f"""\
        store: {{url: "sqlite:///{tmp}/state.db"}}
        serve: {{host: 127.0.0.1, port: {port}}}
        systems:
          source: {{connector: sql, settings: {{url: "sqlite:///{tmp}/tables.db",
                                              entities: {{customer: {{table: src, key_column: code}}}}}}}}
          mirror: {{connector: sql, settings: {{url: "sqlite:///{tmp}/tables.db",
                                              entities: {{customer: {{table: dst, key_column: code}}}}}}}}
        pipelines:
          {PIPELINE}:
            source: {{system: source, entity: customer}}
            target: {{system: mirror, entity: customer}}
            mapping: customer.yaml
        """), encoding="utf-8")
    return config


def _drift(port: int) -> dict[str, list[float]]:
    """The pipeline's `erphub_drift_records` samples on serve's /metrics, by kind (a list: one copy each)."""
    samples: dict[str, list[float]] = {}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("erphub_drift_records{") and f'pipeline="{PIPELINE}"' in line:
            labels, value = line.rsplit(" ", 1)
            kind = labels.split('kind="', 1)[1].split('"', 1)[0]
            samples.setdefault(kind, []).append(float(value))
    return samples


def test_the_drift_gauge_outlives_a_serve_restart_and_a_clean_reconcile_sets_it_to_zero(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, port)
    tables = sa.create_engine(f"sqlite:///{tmp_path}/tables.db")
    with tables.begin() as conn:
        for table in ("src", "dst"):
            conn.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, code TEXT UNIQUE, "
                                 "name TEXT, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
        conn.exec_driver_sql("INSERT INTO src (code, name) VALUES ('C-1', 'one'), ('C-2', 'two'), ('C-3', 'three')")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "erphub.cli", *args, "--config", str(config)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    synced = cli("run", PIPELINE, "--engine", "plain", "--json")
    assert synced.returncode == 0, synced.stderr[-2000:]
    with tables.begin() as conn:  # behind erphub's back: the target loses a record
        assert conn.exec_driver_sql("DELETE FROM dst WHERE code = 'C-2'").rowcount == 1

    found = cli("reconcile", PIPELINE, "--json")
    assert found.returncode == 1 and json.loads(found.stdout)["missing"] == 1, found.stdout + found.stderr[-2000:]
    with running_serve(config, port, cwd=tmp_path, env=env):  # a restart: the metrics folder is emptied
        assert _drift(port) == {"missing": [1.0], "different": [0.0], "extra": [0.0]}

    with running_serve(config, port, cwd=tmp_path, env=env):
        repaired = cli("reconcile", PIPELINE, "--repair", "--json")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr[-2000:]
        assert _drift(port) == {"missing": [0.0], "different": [0.0], "extra": [0.0]}
    with tables.connect() as conn:  # the repair really restored the record in the target
        assert conn.exec_driver_sql("SELECT name FROM dst WHERE code = 'C-2'").scalar() == "two"
    tables.dispose()
