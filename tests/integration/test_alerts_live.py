"""Every alert, driven for real, seen firing by a real Prometheus scraping a real `erphub serve`.

One `erphub serve` (schedules on: its own Prefect server child and runner), one Prometheus (scrape and
evaluation every second, rules = monitoring/alerts.yml with `for: 0s`), and the failures themselves:

- ErphubAuthFailing / ErphubSyncFailing: a scheduled deployment of a pipeline whose ERP (the Kingdee
  sandbox) gets a wrong password; the run happens in Prefect's flow-run subprocess, so its counters
  reach serve's /metrics only through the shared metrics folder;
- ErphubThrottled: a one-shot `erphub run` against a Jiandaoyun sandbox answering 429 to every read;
- ErphubDeadLettersGrowing: a one-shot run whose mapping rejects every record, after Prometheus saw 0;
- ErphubDeadLettersUnattended: those dead letters' creation time moved back two days in the store;
- ErphubWebhookRejected: eight deliveries with a bad HMAC signature to serve's webhook listener;
- ErphubSyncStale: a scheduled pipeline that never ran, first seen in the config three years ago;
- ErphubDrift: a one-shot `erphub reconcile` finding a record deleted from the mirror table behind
  erphub's back (its gauge reaches serve's /metrics through the store);
- ErphubDown: `erphub serve` killed (SIGKILL).

A healthy scheduled pipeline (CRM customers into a staging table) runs in the same serve and stays out
of every alert; /metrics is on its own port, apart from the webhook listener.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from erphub.sandbox.serve import SandboxServer
from tests.integration.live_hub_config import JDY_KEY, SECRETS_ENV, STAGING_MAPPING, create_staging_tables, live_config
from tests.integration.test_prometheus import ALERTS, RunningPrometheus, _binary, _fast_rules, _free_port

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[2]
YEARLY = "0 0 1 1 *"  # never ticks during a test: every run here is one the test asks for
WEBHOOK_SECRET = "live-webhook-secret-7c1d"

CONFIG = live_config("""\
store: {{url: "sqlite:///{tmp}/state.db"}}
serve:
  host: 127.0.0.1
  port: {port}
  webhooks:
    shop: {{kind: hmac, secret: "${{env:LIVE_WEBHOOK_SECRET}}", max_age_s: 60}}
metrics: {{host: 127.0.0.1, port: {metrics_port}}}
logging: {{file: logs/erphub.log}}
""", more_systems="""\
  crm_slow:
    connector: jiandaoyun
    settings: {{base_url: "{slow_url}"}}
    secrets: {{api_key: "${{env:LIVE_JDY_KEY}}"}}
    retry: {{max_attempts: 3, max_seconds: 5}}
""", pipelines="""\
  auth_customers:
    source: {{system: crm, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: {repo}/mappings/jiandaoyun_to_kingdee/customer.yaml
    schedule: "{yearly}"
    flow_retries: 0
  healthy_customers:
    source: {{system: crm, entity: customer}}
    target: {{system: staging, entity: customer}}
    mapping: {tmp}/staging_customer.yaml
    schedule: "{yearly}"
  throttled_customers:
    source: {{system: crm_slow, entity: customer}}
    target: {{system: staging, entity: customer}}
    mapping: {tmp}/staging_customer.yaml
  rejected_customers:
    source: {{system: crm, entity: customer}}
    target: {{system: staging, entity: customer}}
    mapping: {tmp}/rejecting_customer.yaml
  drifting_customers:
    source: {{system: crm, entity: customer}}
    target: {{system: mirror, entity: customer}}
    mapping: {tmp}/staging_customer.yaml
  never_customers:
    source: {{system: crm, entity: customer}}
    target: {{system: staging, entity: customer}}
    mapping: {tmp}/staging_customer.yaml
    schedule: "{yearly}"
""")
REJECTING_MAPPING = STAGING_MAPPING.replace("{from: customer_name}",
                                            "{from: customer_name, validate: {length: {max: 1}}}")


def _poll(check: Any, what: str, timeout_s: float = 60, proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"erphub serve exited with {proc.returncode} while waiting for {what}")
        try:
            result = check()
        except (httpx.HTTPError, sa.exc.OperationalError):
            result = None
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


class Hub:
    """The config, the environment and the store of the hub under test."""

    def __init__(self, tmp: Path, env: dict[str, str], config: Path, port: int, metrics_port: int) -> None:
        self.tmp, self.env, self.config = tmp, env, config
        self.port, self.metrics_port = port, metrics_port
        self.store = sa.create_engine(f"sqlite:///{tmp}/state.db")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "erphub.cli", *args, "--config", str(self.config)],
                              env=self.env, cwd=self.tmp, capture_output=True, text=True, timeout=120)

    def runs(self, pipeline: str) -> list[tuple[str, str]]:
        with self.store.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(sa.text(
                "select trigger, status from erphub_runs where pipeline=:p and finished_at is not null"),
                {"p": pipeline})]

    def run_ids(self, pipeline: str) -> list[str]:
        with self.store.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("select id from erphub_runs where pipeline=:p"),
                                               {"p": pipeline})]

    def execute(self, sql: str, **params: Any) -> None:
        with self.store.begin() as conn:
            conn.execute(sa.text(sql), params)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    from erphub import sandbox as sandboxes

    staging = sa.create_engine(f"sqlite:///{tmp_path}/staging.db")
    with staging.begin() as conn:
        create_staging_tables(conn)
    staging.dispose()
    (tmp_path / "staging_customer.yaml").write_text(STAGING_MAPPING, encoding="utf-8")
    (tmp_path / "rejecting_customer.yaml").write_text(REJECTING_MAPPING, encoding="utf-8")
    crm = sandboxes.create("jiandaoyun", api_key=JDY_KEY)
    slow = sandboxes.create("jiandaoyun", api_key=JDY_KEY)
    slow.faults.set("data/list", burst_429=10_000, retry_after=0.1)  # every read: 429
    erp = sandboxes.create("kingdee")
    port, metrics_port = _free_port(), _free_port()
    env = {**os.environ, **SECRETS_ENV, "LIVE_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "ERPHUB_LOG_FORMAT": "json"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("PREFECT_API_URL", None)
    with SandboxServer(crm) as crm_server, SandboxServer(slow) as slow_server, SandboxServer(erp) as erp_server:
        config = tmp_path / "hub.yaml"
        config.write_text(CONFIG.format(tmp=tmp_path, port=port, metrics_port=metrics_port, repo=REPO,
                                        crm_url=crm_server.base_url, slow_url=slow_server.base_url,
                                        erp_url=erp_server.base_url, yearly=YEARLY), encoding="utf-8")
        yield Hub(tmp_path, env, config, port, metrics_port)


def _prometheus(tmp: Path, target: str) -> Iterator[RunningPrometheus]:
    binary = _binary("prometheus")
    rules = tmp / "alerts.fast.yml"
    _fast_rules(ALERTS, rules)
    config = tmp / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                      f"rule_files: ['{rules}']\n"
                      "scrape_configs:\n"
                      "  - job_name: erphub\n"
                      f"    static_configs: [{{targets: ['{target}']}}]\n")
    log_path = tmp / "prometheus.log"
    listen = f"127.0.0.1:{_free_port()}"
    with log_path.open("w") as log:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'prom'}",
                                 f"--web.listen-address={listen}", "--rules.alert.resend-delay=1s"],
                                stdout=log, stderr=subprocess.STDOUT)
    running = RunningPrometheus(f"http://{listen}", proc, log_path)
    try:
        running.wait_for(lambda: httpx.get(running.base_url + "/-/ready", timeout=1).status_code == 200,
                         "prometheus ready")
        yield running
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _bad_signature_delivery(port: int, n: int) -> int:
    raw = json.dumps({"id": f"evt-{n}"}).encode()
    ts = str(int(time.time()))
    sig = hmac.new(b"a-rotated-secret", ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return httpx.post(f"http://127.0.0.1:{port}/webhooks/shop", content=raw, timeout=5,
                      headers={"X-Timestamp": ts, "X-Signature": f"sha256={sig}", "X-Delivery-Id": f"d-{n}",
                               "Content-Type": "application/json"}).status_code


def _prefect(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One call to serve's Prefect server, retried on 503 as Prefect's own client does: on SQLite the
    server answers 503 while its database is locked by the scheduler or a flow run's writes."""
    for attempt in range(10):
        response = httpx.request(method, url, timeout=10, **kwargs)
        if response.status_code != 503:
            break
        time.sleep(min(0.5 * 2**attempt, 5))
    response.raise_for_status()
    return response


def _run_deployment(api: str, pipeline: str) -> None:
    deployment = _prefect("GET", f"{api}/deployments/name/sync-pipeline/{pipeline}")
    _prefect("POST", f"{api}/deployments/{deployment.json()['id']}/create_flow_run", json={})


def _dashboard_queries() -> list[tuple[str, str]]:
    """Every panel target of the Grafana dashboard, with Grafana's variables as the dashboard's "All"
    and the intervals fitting this test's one-second scrapes."""
    dashboard = json.loads((REPO / "monitoring" / "grafana" / "erphub.json").read_text(encoding="utf-8"))
    values = {"$pipeline": ".*", "$system": ".*", "$__rate_interval": "1m", "$__range": "5m"}
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in values.items():
                expr = expr.replace(name, value)
            queries.append((panel["title"], expr))
    return queries


def _labels(alerts: list[dict[str, Any]], key: str) -> set[str]:
    return {a["labels"].get(key, "") for a in alerts}


def test_every_alert_fires_for_its_failure_and_stays_quiet_for_a_healthy_pipeline(hub: Hub) -> None:
    serve = subprocess.Popen([sys.executable, "-m", "erphub.cli", "serve", "--config", str(hub.config),
                              "--log-format", "json"], env=hub.env, cwd=hub.tmp,
                             stdout=subprocess.DEVNULL, stderr=(hub.tmp / "serve.stderr").open("wb"))
    try:
        def schedules_running() -> dict[str, Any] | None:
            body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{hub.port}/healthz", timeout=2).json()
            return body if body["schedules"] == "running" else None

        health = _poll(schedules_running, "schedules running", 200, serve)  # serve gives the Prefect server 180 s
        # /metrics is on its own listener, not on the public webhook one.
        assert httpx.get(f"http://127.0.0.1:{hub.port}/metrics", timeout=2).status_code == 404
        prom_iter = _prometheus(hub.tmp, f"127.0.0.1:{hub.metrics_port}")
        prom = next(prom_iter)
        try:
            prom.wait_for(lambda: prom.query('erphub_dead_letters{pipeline="rejected_customers"} == 0'),
                          "first scrape")
            # The failures.
            _run_deployment(health["prefect_api"], "auth_customers")
            _run_deployment(health["prefect_api"], "healthy_customers")
            throttled = hub.cli("run", "throttled_customers", "--engine", "plain", "--json")
            assert throttled.returncode == 1, throttled.stderr[-2000:]
            rejected = hub.cli("run", "rejected_customers", "--engine", "plain", "--json")
            assert rejected.returncode == 0, rejected.stderr[-2000:]
            assert json.loads(rejected.stdout)[0]["counts"]["dead_lettered"] > 0
            assert {_bad_signature_delivery(hub.port, n) for n in range(8)} == {401}
            # Drift: a one-shot run fills the mirror table, a row is deleted there behind erphub's back, and
            # a one-shot reconcile finds it missing; its gauge reaches serve's /metrics via the store.
            mirrored = hub.cli("run", "drifting_customers", "--engine", "plain", "--json")
            assert mirrored.returncode == 0, mirrored.stderr[-2000:]
            with sa.create_engine(f"sqlite:///{hub.tmp}/staging.db").begin() as conn:
                deleted = conn.exec_driver_sql("DELETE FROM stg_mirror WHERE code = "
                                               "(SELECT min(code) FROM stg_mirror)").rowcount
            assert deleted == 1
            drift = hub.cli("reconcile", "drifting_customers", "--json")
            assert drift.returncode == 1, drift.stdout[-2000:] + drift.stderr[-2000:]
            assert json.loads(drift.stdout)["missing"] == 1
            _poll(lambda: hub.runs("auth_customers") and hub.runs("healthy_customers"), "scheduled runs", 90, serve)
            assert hub.runs("auth_customers") == [("schedule", "failed")]
            assert hub.runs("healthy_customers") == [("schedule", "success")]

            want = {
                "ErphubAuthFailing": ("system", "erp"),
                "ErphubSyncFailing": ("pipeline", "auth_customers"),
                "ErphubThrottled": ("system", "crm_slow"),
                "ErphubDeadLettersGrowing": ("pipeline", "rejected_customers"),
                "ErphubWebhookRejected": ("source", "shop"),
                "ErphubDrift": ("pipeline", "drifting_customers"),
            }
            for alert, (key, value) in want.items():
                prom.wait_for(lambda a=alert, k=key, v=value: v in _labels(prom.firing(a), k), alert)

            # Time travel in the store only: the dead letters are two days old, the never-run pipeline
            # was first configured three years ago (its yearly interval doubled is two years).
            hub.execute("update erphub_dead_letters set created_at = :at",
                        at=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 2 * 86400)))
            hub.execute("update erphub_configured_pipelines set first_seen_at = :at where pipeline = :p",
                        at=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 3 * 366 * 86400)),
                        p="never_customers")
            prom.wait_for(lambda: "rejected_customers" in _labels(prom.firing("ErphubDeadLettersUnattended"),
                                                                  "pipeline"), "ErphubDeadLettersUnattended")
            prom.wait_for(lambda: "never_customers" in _labels(prom.firing("ErphubSyncStale"), "pipeline"),
                          "ErphubSyncStale")

            # The healthy pipeline and its systems are in no alert; erphub itself is up.
            alerts = httpx.get(prom.base_url + "/api/v1/alerts", timeout=2).json()["data"]["alerts"]
            assert "healthy_customers" not in _labels(alerts, "pipeline")
            assert "staging" not in _labels(alerts, "system")
            assert not prom.firing("ErphubDown")

            # The scheduled run's auth failure, on serve's own /metrics and as Prometheus scraped it.
            body = httpx.get(f"http://127.0.0.1:{hub.metrics_port}/metrics", timeout=5).text
            (hub.tmp / "metrics.txt").write_text(body)
            samples = dict(line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))
            assert float(samples['erphub_auth_failures_total{system="erp"}']) >= 1
            assert float(samples['erphub_runs_total{pipeline="auth_customers",status="failed"}']) == 1
            [auth] = prom.query('erphub_auth_failures_total{system="erp"}')
            assert float(auth["value"][1]) >= 1
            # The one-shot reconcile's drift gauge, from the store (the process has ended).
            assert float(samples['erphub_drift_records{kind="missing",pipeline="drifting_customers"}']) == 1
            # The Prefect UI is off by default: serve's Prefect server answers the API, not the UI.
            prefect_root = health["prefect_api"].removesuffix("/api")
            assert httpx.get(f"{health['prefect_api']}/health", timeout=5).status_code == 200
            assert httpx.get(prefect_root + "/", timeout=5, follow_redirects=True).status_code == 404

            # The flow run carries erphub's run id (name and tags); erphub logs RUN_ID finds erphub's and
            # Prefect's lines of that scheduled run; every line in the file is one JSON object.
            run_id = hub.run_ids("auth_customers")[0]
            [flow_run] = _prefect("POST", f"{health['prefect_api']}/flow_runs/filter", json={
                "flow_runs": {"tags": {"all_": [f"erphub-run:{run_id}"]}}}).json()
            assert flow_run["name"] == f"auth_customers-{run_id}"
            lines = [json.loads(line) for line in (hub.tmp / "logs" / "erphub.log").read_text().splitlines()]
            assert any(line.get("logger") == "prefect.flow_runs" and "AuthError" in line.get("exception", "")
                       for line in lines)
            shown = hub.cli("logs", run_id)
            assert shown.returncode == 0, shown.stderr
            loggers = {json.loads(line).get("logger") for line in shown.stdout.splitlines()}
            assert {"erphub.engine", "prefect.flow_runs"} <= loggers

            # The store-backed gauges arrive once per pipeline (no second copy from the registry).
            assert len(prom.query('erphub_last_run_timestamp_seconds{pipeline="auth_customers"}')) == 1
            # Every Grafana panel's query shows data from this hub's series.
            for title, expr in _dashboard_queries():
                assert prom.query(expr), f"dashboard panel {title!r} shows no data: {expr}"

            # Kill erphub serve: ErphubDown pages.
            serve.send_signal(signal.SIGKILL)
            serve.wait(10)
            prom.wait_for(lambda: prom.firing("ErphubDown"), "ErphubDown")
        finally:
            prom_iter.close()
    finally:
        if serve.poll() is None:
            serve.terminate()
            serve.wait(30)
