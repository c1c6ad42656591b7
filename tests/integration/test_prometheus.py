"""A real Prometheus on 127.0.0.1 scrapes erphub's /metrics and fires ErphubSyncFailing.

The rules are monitoring/alerts.yml with every `for:` shortened to 0s (a copy written for the test;
the real file is never edited), scrape and evaluation every second, resend delay 1s.

The metrics source is real: `erphub run` runs two pipelines, one against an ERP that is down (it
fails after its retries) and one into a staging table (it succeeds); then `erphub serve` exposes
/metrics, whose run gauges come from the store at scrape time.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from erphub.sandbox.serve import SandboxServer

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "monitoring" / "alerts.yml"
IN_CI = os.environ.get("CI") == "true"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (scripts/install_prometheus.sh installs it)"
        if IN_CI:
            pytest.fail(message + "; required under CI=true")
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MetricsSource:
    target: str                 # host:port serving /metrics
    failing_pipeline: str       # must end up in ErphubSyncFailing
    healthy_pipeline: str       # must not


FAILING_CONFIG = """\
store: {{url: "sqlite:///{tmp}/state.db"}}
serve: {{host: 127.0.0.1, port: {port}}}
systems:
  crm:
    connector: jiandaoyun
    settings: {{base_url: "{crm_url}"}}
    secrets: {{api_key: "${{env:IT_JDY_KEY}}"}}
  erp:                                   # nothing listens here: every write fails after its retries
    connector: kingdee
    settings: {{server_url: "http://127.0.0.1:9/k3cloud/", acct_id: "x", username: "u"}}
    secrets: {{password: "${{env:IT_KD_PASSWORD}}"}}
    retry: {{max_attempts: 2, max_seconds: 2}}
  staging:
    connector: sql
    settings:
      url: "sqlite:///{tmp}/staging.db"
      entities: {{customer: {{table: stg_customer, key_column: code}}}}
pipelines:
  it_orders:
    source: {{system: crm, entity: sales_order}}
    target: {{system: erp, entity: sales_order}}
    mapping: {repo}/mappings/jiandaoyun_to_kingdee/sales_order.yaml
    schedule: "0 * * * *"
    flow_retries: 0
  it_customers:
    source: {{system: crm, entity: customer}}
    target: {{system: staging, entity: customer}}
    mapping: {tmp}/staging_customer.yaml
    schedule: "0 * * * *"
"""
STAGING_MAPPING = """\
source: customer
target: customer
key: code
fields:
  code: {from: customer_code}
  name: {from: customer_name}
"""


@pytest.fixture
def failing_pipeline_metrics(tmp_path: Path) -> Iterator[MetricsSource]:
    """`erphub serve` on loopback after a real run in which one pipeline failed and one succeeded."""
    import sqlalchemy as sa

    from erphub import sandbox as sandboxes

    engine = sa.create_engine(f"sqlite:///{tmp_path}/staging.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE stg_customer (id INTEGER PRIMARY KEY AUTOINCREMENT, code TEXT UNIQUE, "
                             "name TEXT, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
    engine.dispose()
    (tmp_path / "staging_customer.yaml").write_text(STAGING_MAPPING, encoding="utf-8")
    crm = sandboxes.create("jiandaoyun", api_key="it-jdy-key")
    port = _free_port()
    env = {**os.environ, "IT_JDY_KEY": "it-jdy-key", "IT_KD_PASSWORD": "pw"}
    with SandboxServer(crm) as crm_server:
        config = tmp_path / "hub.yaml"
        config.write_text(FAILING_CONFIG.format(tmp=tmp_path, port=port, crm_url=crm_server.base_url, repo=REPO),
                          encoding="utf-8")
        run = subprocess.run([sys.executable, "-m", "erphub.cli", "run", "it_orders", "it_customers", "--engine",
                              "plain", "--json", "--config", str(config)], env=env, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 1, run.stderr[-2000:]
        assert {r["pipeline"]: r["status"] for r in json.loads(run.stdout)} == {
            "it_orders": "failed", "it_customers": "success"}
        serve = subprocess.Popen([sys.executable, "-m", "erphub.cli", "serve", "--no-schedules", "--config",
                                  str(config)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if serve.poll() is not None or time.monotonic() > deadline:
                    errors = serve.stderr.read().decode()[-2000:] if serve.stderr else ""
                    pytest.fail(f"erphub serve did not come up: {errors}")
                time.sleep(0.2)
            yield MetricsSource(f"127.0.0.1:{port}", "it_orders", "it_customers")
        finally:
            serve.terminate()
            serve.wait(timeout=30)


def _fast_rules(src: Path, dst: Path) -> None:
    """alerts.yml with `for: 0s` everywhere, so the live test needs no minutes of waiting."""
    yaml = YAML()
    doc: Any = yaml.load(src.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    with dst.open("w") as fh:
        yaml.dump(doc, fh)


@dataclass
class RunningPrometheus:
    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def wait_for(self, check: Any, what: str, timeout_s: float = 30) -> Any:
        """Poll *check* until it returns something truthy; fail with Prometheus's log if it dies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                result = check()
            except httpx.HTTPError:
                result = None
            if result:
                return result
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}; prometheus log: {self.log_path.read_text()[-2000:]}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(self.base_url + "/api/v1/query", params={"query": promql}, timeout=2)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = httpx.get(self.base_url + "/api/v1/alerts", timeout=2).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


@pytest.fixture
def prometheus(tmp_path: Path, failing_pipeline_metrics: MetricsSource) -> Iterator[RunningPrometheus]:
    binary = _binary("prometheus")
    promtool = _binary("promtool")
    rules = tmp_path / "alerts.fast.yml"
    _fast_rules(ALERTS, rules)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules}']\n"
        "scrape_configs:\n"
        "  - job_name: erphub\n"
        f"    static_configs: [{{targets: ['{failing_pipeline_metrics.target}']}}]\n"
    )
    subprocess.run([promtool, "check", "config", str(config)], check=True, capture_output=True)
    log_path = tmp_path / "prometheus.log"
    listen = f"127.0.0.1:{_free_port()}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address={listen}",
                "--rules.alert.resend-delay=1s",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = RunningPrometheus(f"http://{listen}", proc, log_path)
    try:
        running.wait_for(
            lambda: httpx.get(running.base_url + "/-/ready", timeout=1).status_code == 200, "prometheus ready"
        )
        yield running
    finally:
        proc.terminate()  # by PID: only the process this fixture started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_sync_failing_fires_in_a_real_prometheus(
    prometheus: RunningPrometheus, failing_pipeline_metrics: MetricsSource
) -> None:
    source = failing_pipeline_metrics
    prometheus.wait_for(
        lambda: [r for r in prometheus.query('up{job="erphub"}') if r["value"][1] == "1"], "target up"
    )

    def failing_alert() -> list[dict[str, Any]]:
        firing = prometheus.firing("ErphubSyncFailing")
        return [a for a in firing if a["labels"]["pipeline"] == source.failing_pipeline]

    [alert] = prometheus.wait_for(failing_alert, "ErphubSyncFailing firing")
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"]["summary"] == f"erphub pipeline {source.failing_pipeline} is failing"
    assert alert["annotations"]["runbook_url"].endswith("RUNBOOK.md#erphubsyncfailing")

    # The healthy pipeline, scraped from the same endpoint in the same evaluations, stays quiet.
    firing = {a["labels"]["pipeline"] for a in prometheus.firing("ErphubSyncFailing")}
    assert source.healthy_pipeline not in firing
    # The store-backed gauges arrived once per pipeline (no duplicate series from the registry).
    last_run = f'erphub_last_run_timestamp_seconds{{pipeline="{source.failing_pipeline}"}}'
    assert len(prometheus.query(last_run)) == 1
