"""One-shot runs pushing to a real Pushgateway on loopback, scraped by a real Prometheus: `increase()`
rules work on what they push.

Debian's `prometheus-pushgateway` (scripts/install_prometheus.sh), Prometheus scraping it every
second with `honor_labels: true` (as monitoring/README.md says), the rules of monitoring/alerts.yml
with `for: 0s`. Two one-shot `erphub run`s (separate processes) of a pipeline whose ERP rejects the
password, beside a healthy pipeline into a staging table. Each push replaces the hub's group
(job `erphub`, instance `metrics.instance`) with the hub's cumulative counters: run 1 pushes N auth
failures, run 2 pushes more than N (a "fresh 1" per process would push N again, and `increase()` across
runs would stay 0), and `increase(erphub_auth_failures_total[30m])` fires ErphubAuthFailing for the ERP
only. (Whether it already fires after run 1 depends on whether a scrape caught that run's earlier push
of the primed 0: not asserted.) The gateway keeps nothing on disk, so it starts empty in every test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from erphub.sandbox.serve import SandboxServer
from tests.integration.live_hub_config import JDY_KEY, SECRETS_ENV, STAGING_MAPPING, create_staging_tables, live_config
from tests.integration.test_prometheus import ALERTS, RunningPrometheus, _binary, _fast_rules, _free_port

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[2]
INSTANCE = "hub-under-test"

CONFIG = live_config("""\
store: {{url: "sqlite:///{tmp}/state.db"}}
metrics: {{pushgateway_url: "http://{gateway}", instance: {instance}}}
""", pipelines="""\
  auth_customers:
    source: {{system: crm, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: {repo}/mappings/jiandaoyun_to_kingdee/customer.yaml
  healthy_customers:
    source: {{system: crm, entity: customer}}
    target: {{system: staging, entity: customer}}
    mapping: {tmp}/staging_customer.yaml
""")


def _started(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("w") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def prom_and_gateway(tmp_path: Path) -> Iterator[tuple[RunningPrometheus, str]]:
    gateway_binary, prometheus_binary = _binary("prometheus-pushgateway"), _binary("prometheus")
    gateway = f"127.0.0.1:{_free_port()}"
    # Debian builds the Pushgateway with --persistence.file=/var/lib/prometheus/pushgateway.data: without an
    # empty one here, every test's gateway started with the groups an earlier test (or CI run) left there.
    gateway_proc = _started([gateway_binary, f"--web.listen-address={gateway}", "--persistence.file="],
                            tmp_path / "pushgateway.log")
    rules = tmp_path / "alerts.fast.yml"
    _fast_rules(ALERTS, rules)
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                      f"rule_files: ['{rules}']\n"
                      "scrape_configs:\n"
                      "  - job_name: pushgateway\n"
                      "    honor_labels: true\n"
                      f"    static_configs: [{{targets: ['{gateway}']}}]\n")
    listen = f"127.0.0.1:{_free_port()}"
    prom_proc = _started([prometheus_binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'prom'}",
                          f"--web.listen-address={listen}"], tmp_path / "prometheus.log")
    prom = RunningPrometheus(f"http://{listen}", prom_proc, tmp_path / "prometheus.log")
    try:
        prom.wait_for(lambda: prom.query('up{job="pushgateway"} == 1'), "the Pushgateway scraped")
        yield prom, gateway
    finally:
        for proc in (prom_proc, gateway_proc):
            proc.terminate()
            proc.wait(10)


def test_two_one_shot_runs_pushed_to_a_real_pushgateway_fire_an_increase_rule(
        tmp_path: Path, prom_and_gateway: tuple[RunningPrometheus, str]) -> None:
    from erphub import sandbox as sandboxes

    prom, gateway = prom_and_gateway
    staging = sa.create_engine(f"sqlite:///{tmp_path}/staging.db")
    with staging.begin() as conn:
        create_staging_tables(conn)
    staging.dispose()
    (tmp_path / "staging_customer.yaml").write_text(STAGING_MAPPING, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERPHUB_", "PROMETHEUS_", "PREFECT_API"))}
    env.update(SECRETS_ENV)
    crm = sandboxes.create("jiandaoyun", api_key=JDY_KEY)
    erp = sandboxes.create("kingdee")
    with SandboxServer(crm) as crm_server, SandboxServer(erp) as erp_server:
        config = tmp_path / "hub.yaml"
        config.write_text(CONFIG.format(tmp=tmp_path, gateway=gateway, instance=INSTANCE, repo=REPO,
                                        crm_url=crm_server.base_url, erp_url=erp_server.base_url), encoding="utf-8")

        stderrs: list[str] = []

        def one_shot_run() -> None:
            result = subprocess.run([sys.executable, "-m", "erphub.cli", "run", "auth_customers", "healthy_customers",
                                     "--engine", "plain", "--config", str(config)],
                                    env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
            stderrs.append(result.stderr)
            assert result.returncode == 1, result.stderr[-2000:]  # auth_customers failed, healthy succeeded
            assert "pushgateway push failed" not in result.stderr, result.stderr[-2000:]

        def gateway_view() -> str:
            """What the Pushgateway itself holds for the ERP's auth failures (for a failure message)."""
            body = httpx.get(f"http://{gateway}/metrics", timeout=5).text
            return "; ".join(line for line in body.splitlines() if line.startswith("erphub_auth_failures_total"))

        def auth_failures() -> float:
            [series] = prom.query('erphub_auth_failures_total{system="erp"}')
            # The push's grouping key arrives as the series' labels (honor_labels), not the scrape's.
            assert (series["metric"]["job"], series["metric"]["instance"]) == ("erphub", INSTANCE)
            return float(series["value"][1])

        def folder_total() -> float:
            """Both processes' ERP auth failures as the hub's metrics folder holds them (one file per pid)."""
            code = ("import sys; from prometheus_client import CollectorRegistry, generate_latest, multiprocess;"
                    "r = CollectorRegistry(); multiprocess.MultiProcessCollector(r, path=sys.argv[1]);"
                    "print(generate_latest(r).decode())")
            out = subprocess.run([sys.executable, "-c", code, str(tmp_path / ".erphub" / "metrics")],
                                 capture_output=True, text=True, check=True).stdout
            return sum(float(line.rsplit(" ", 1)[1]) for line in out.splitlines()
                       if line.startswith('erphub_auth_failures_total{system="erp"}'))

        one_shot_run()
        prom.wait_for(lambda: prom.query('erphub_auth_failures_total{system="erp"} > 0'), "run 1's push scraped")
        after_run_1 = auth_failures()
        assert after_run_1 == folder_total() >= 1, gateway_view()  # run 1's own count, nothing more
        one_shot_run()
        # Run 2's push carries run 1's failures too (the metrics folder): what Prometheus sees is the hub's
        # total over both processes (a fresh count per process would be run 2's alone), and the rule fires.
        total = folder_total()
        assert total > after_run_1, total  # each run failed its login
        try:
            prom.wait_for(lambda: auth_failures() == total, "run 2's cumulative push scraped", timeout_s=60)
        except BaseException:
            print(f"total={total}; gateway holds: {gateway_view()}; run 2 stderr: {stderrs[-1][-3000:]}")
            raise
        firing = prom.wait_for(lambda: prom.firing("ErphubAuthFailing"), "ErphubAuthFailing")
    assert {a["labels"]["system"] for a in firing} == {"erp"}
    [healthy_runs] = prom.query('erphub_runs_total{pipeline="healthy_customers",status="success"}')
    assert float(healthy_runs["value"][1]) == 2  # both processes' runs, one cumulative series
    failing = prom.wait_for(lambda: prom.firing("ErphubSyncFailing"), "ErphubSyncFailing")
    assert {a["labels"]["pipeline"] for a in failing} == {"auth_customers"}
