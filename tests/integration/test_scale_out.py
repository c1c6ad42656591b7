"""Scale-out as the README's "Scaling out" section says: a Prefect server on PostgreSQL, `erphub deploy`,
three `erphub worker`s, one quota for the whole hub.

Six pipelines read the one Jiandaoyun sandbox (its quota shared: `rate_limit: {per_second, shared: true}`)
into six staging tables on PostgreSQL. The sandbox's own request log shows the quota held over every
1-second window across all workers; one worker and its flow runs are SIGKILLed mid-run; their heartbeats
stop, the automation `erphub deploy` made marks each lost run Crashed and runs its deployment again on a
worker still alive; every staging table then holds each source customer exactly once.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from erphub import sandbox as sandboxes
from erphub.sandbox.faults import max_in_window
from erphub.sandbox.serve import SandboxServer
from tests.conftest import postgres_admin_url
from tests.integration.live_hub_config import STAGING_MAPPING

pytestmark = [pytest.mark.prefect, pytest.mark.postgres, pytest.mark.slow]

PIPELINES = [f"customers_{n}" for n in range(1, 7)]
QUOTA = 4  # Jiandaoyun requests a second, for the whole hub
API_KEY = "scale-out-jdy-key"
PR_SET_CHILD_SUBREAPER = 36
DONE = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database(admin: sqlalchemy.Engine, name: str) -> str:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return name


def write_config(tmp: Path, crm_url: str, store_url: str, staging_url: str) -> Path:
    (tmp / "customer.yaml").write_text(STAGING_MAPPING, encoding="utf-8")
    systems = "".join(
        f"  staging_{n}:\n    connector: sql\n    settings:\n      url: \"{staging_url}\"\n"
        f"      entities: {{customer: {{table: stg_{n}, key_column: code}}}}\n" for n in range(1, 7))
    pipelines = "".join(
        f"  {name}:\n    source: {{system: crm, entity: customer}}\n"
        f"    target: {{system: staging_{n}, entity: customer}}\n"
        f"    mapping: customer.yaml\n    schedule: \"0 3 1 1 *\"\n    page_size: 10\n    batch_size: 10\n"
        f"    flow_retries: 0\n    reconcile: {{schedule: null}}\n"
        for n, name in enumerate(PIPELINES, start=1))
    config = tmp / "erphub.yaml"
    config.write_text(textwrap.dedent(f"""\
        version: 1
        store: {{url: "{store_url}"}}
        systems:
          crm:
            connector: jiandaoyun
            settings: {{base_url: "{crm_url}", app_id: crm_app_0001}}
            secrets: {{api_key: "${{env:SCALE_JDY_KEY}}"}}
            rate_limit: {{per_second: {QUOTA}, shared: true}}
        """) + systems + "pipelines:\n" + pipelines, encoding="utf-8")
    return config


class Prefect:
    """The Prefect server's REST API, as `prefect deployment run` and the UI use it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def deployment(self, flow: str, name: str) -> dict[str, Any]:
        response = self.http.get(f"/deployments/name/{flow}/{name}")
        response.raise_for_status()
        return dict(response.json())

    def run(self, deployment_id: str) -> str:
        response = self.http.post(f"/deployments/{deployment_id}/create_flow_run", json={})
        response.raise_for_status()
        return str(response.json()["id"])

    def flow_run(self, run_id: str) -> dict[str, Any]:
        response = self.http.get(f"/flow_runs/{run_id}")
        response.raise_for_status()
        return dict(response.json())

    def runs_of(self, deployment_id: str) -> list[dict[str, Any]]:
        """The flow runs of a deployment that someone asked for (not the cron's future ticks), oldest first."""
        response = self.http.post("/flow_runs/filter",
                                  json={"flow_runs": {"deployment_id": {"any_": [deployment_id]}}})
        response.raise_for_status()
        asked = [run for run in response.json() if not run["auto_scheduled"]]
        return sorted(asked, key=lambda run: str(run["created"]))


def _wait(predicate: Any, what: str, limit_s: float = 400.0, describe: Any = None) -> Any:
    deadline = time.monotonic() + limit_s  # a guard against a hang, not a measurement
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}" + (f": {describe()}" if describe else ""))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """PostgreSQL databases, the sandbox, a Prefect server on PostgreSQL; torn down in reverse."""
    admin_url = postgres_admin_url()
    try:
        admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        admin.connect().close()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL unreachable: {exc.__class__.__name__}")
    tag = uuid.uuid4().hex[:8]
    names = [_database(admin, f"erphub_scale_{kind}_{tag}") for kind in ("prefect", "store", "staging")]
    base = admin_url.rsplit("/", 1)[0]
    prefect_db, store_url, staging_url = (f"{base}/{name}" for name in names)
    staging = sqlalchemy.create_engine(staging_url)
    with staging.begin() as conn:
        for n in range(1, 7):
            conn.exec_driver_sql(f"CREATE TABLE stg_{n} (id SERIAL PRIMARY KEY, code TEXT UNIQUE, name TEXT, "
                                 "updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
    crm = sandboxes.create("jiandaoyun", api_key=API_KEY)
    port = _free_port()
    env = {**os.environ, "SCALE_JDY_KEY": API_KEY, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "false",
           # README "Scaling out", step 1: the Prefect server keeps its state in PostgreSQL.
           "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db.replace("postgresql+psycopg", "postgresql+asyncpg"),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO"}
    for name in ("PREFECT_LOGGING_SETTINGS_PATH",):
        env.pop(name, None)
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)  # a killed worker's flow run is reaped here, not left a zombie
    server_log = (tmp_path / "prefect-server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port), "--no-ui", "--analytics-off"],
                              env=env, cwd=tmp_path, stdout=server_log, stderr=subprocess.STDOUT)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with SandboxServer(crm) as crm_server:
            config = write_config(tmp_path, crm_server.base_url, store_url, staging_url)

            def healthy() -> bool:
                assert server.poll() is None, (tmp_path / "prefect-server.log").read_text()[-3000:]
                try:
                    return httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            _wait(healthy, "the Prefect server", 400)
            yield {"tmp": tmp_path, "env": env, "config": config, "crm": crm, "staging": staging,
                   "store_url": store_url, "workers": workers, "prefect": Prefect(env["PREFECT_API_URL"])}
    finally:
        for process in [*workers, server]:
            if process.poll() is None:
                process.terminate()
        for process in [*workers, server]:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        server_log.close()
        while True:  # orphans reparented to this process while it was their subreaper
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    break
            except ChildProcessError:
                break
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0)
        staging.dispose()
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def erphub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "erphub.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def test_deploy_needs_a_reachable_prefect_server(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", "postgresql+psycopg://postgres@127.0.0.1:5432/x",
                          "sqlite:///x.db")
    env = {**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}, "SCALE_JDY_KEY": API_KEY}
    unset = erphub(env, "deploy", "--config", str(config))
    assert unset.returncode == 2 and "PREFECT_API_URL is not set" in unset.stderr
    assert "Traceback" not in unset.stderr
    down = erphub({**env, "PREFECT_API_URL": f"http://127.0.0.1:{_free_port()}/api"}, "deploy", "--config", str(config))
    assert down.returncode == 2 and "unreachable" in down.stderr and "Traceback" not in down.stderr


def test_six_pipelines_on_three_workers_share_one_quota_and_survive_a_killed_worker(cluster: dict[str, Any]) -> None:
    env, config, prefect = cluster["env"], str(cluster["config"]), cluster["prefect"]
    # README step 2: `erphub deploy`, twice: the second run updates the same deployments.
    first = erphub(env, "deploy", "--config", config, "--crash-after", "60", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    again = erphub(env, "deploy", "--config", config, "--crash-after", "60", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert one["work_pool_created"] is True and two["work_pool_created"] is False
    assert one["crash_automation"]["created"] is True and two["crash_automation"]["created"] is False
    assert sorted(d["deployment"] for d in one["deployments"]) == PIPELINES
    assert [d["id"] for d in one["deployments"]] == [d["id"] for d in two["deployments"]]
    pool = prefect.http.get("/work_pools/erphub").json()
    assert pool["type"] == "process"

    # README step 3: workers, each its own process (on its own machine in production).
    for n in range(3):
        log = (cluster["tmp"] / f"worker-{n}.log").open("wb")
        cluster["workers"].append(subprocess.Popen(
            [sys.executable, "-m", "erphub.cli", "worker", "--pool", "erphub", "--name", f"worker-{n}",
             "--limit", "2"],
            env={**env, "PREFECT_HOME": str(cluster["tmp"] / f"home-{n}")}, cwd=cluster["tmp"],
            stdout=log, stderr=subprocess.STDOUT))
    crm = cluster["crm"]
    crm.log.clear()
    deployments = {name: prefect.deployment("sync-pipeline", name)["id"] for name in PIPELINES}
    runs = {name: prefect.run(deployment_id) for name, deployment_id in deployments.items()}

    # Kill the first worker seen running a flow, with that flow run, once it has read a page or more.
    def running_flow() -> tuple[str, int] | None:
        if crm.log.count("data/list") < 3:
            return None
        for name, run_id in runs.items():
            flow_run = prefect.flow_run(run_id)
            assert flow_run["state_type"] not in DONE, (name, flow_run["state"])
            pid = (flow_run.get("infrastructure_pid") or "").rpartition(":")[2]
            if flow_run["state_type"] == "RUNNING" and pid.isdigit():
                return name, int(pid)
        return None

    victim, flow_pid = _wait(running_flow, "a running flow run")
    worker = next(w for w in cluster["workers"] if flow_pid in _children(w.pid))
    killed = set(_children(worker.pid))  # every flow run of that worker dies with it
    os.kill(worker.pid, signal.SIGKILL)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    worker.wait(10)
    for pid in killed:
        _wait(lambda pid=pid: _reaped(pid), "the killed flow runs to be reaped", 30)

    # README "what to monitor": a run whose worker died stops sending heartbeats; the automation
    # `erphub deploy` made marks it Crashed and runs its deployment again, on a worker still alive.
    seen: dict[str, list[tuple[str, str]]] = {}

    def settled() -> dict[str, list[dict[str, Any]]] | None:
        history = {name: prefect.runs_of(deployment_id) for name, deployment_id in deployments.items()}
        seen.update({name: [(r["id"], r["state_type"]) for r in h] for name, h in history.items()})
        return history if all(h and h[-1]["state_type"] == "COMPLETED" for h in history.values()) else None

    history = _wait(settled, "every pipeline's last run to complete (the lost ones rerun by Prefect)",
                    describe=lambda: f"killed {victim}; runs {runs}; seen {seen}")
    lost = {name for name, h in history.items() if h[0]["id"] == runs[name] and h[0]["state_type"] == "CRASHED"}
    assert victim in lost, {name: [(r["state_type"], r["state"]["message"]) for r in h] for name, h in history.items()}
    for name in lost:
        assert "no heartbeat" in (history[name][0]["state"]["message"] or ""), history[name][0]["state"]
        assert len(history[name]) == 2  # one rerun, by the automation
    assert all(len(history[name]) == 1 for name in set(PIPELINES) - lost)
    assert worker.poll() is not None  # the reruns ran on the two workers left

    # `erphub worker` routes Prefect's loggers through erphub's: each run's lines are JSON, none doubled
    # as a Prefect console line; every pipeline's "run finished" is there, with its run id.
    finished_runs = set()
    for n in range(3):
        for line in (cluster["tmp"] / f"worker-{n}.log").read_text().splitlines():
            assert " | erphub." not in line, line
            if line.startswith("{") and '"run finished"' in line:
                event = json.loads(line)
                finished_runs.add(event["pipeline"])
                assert event["run_id"] and event["status"] == "success", event
    assert finished_runs == set(PIPELINES)

    # The quota held at the vendor's side, over every 1-second window, across all workers.
    assert crm.log.count("data/list") >= len(PIPELINES) * 6
    arrivals = sorted(crm.log.times())
    densest = max_in_window(arrivals, 1.0)
    assert densest <= QUOTA, _crowded_windows(arrivals, QUOTA)
    assert all(entry.status != 429 for entry in crm.log.entries())

    # The target's own data: each source customer exactly once in every staging table, none lost.
    expected = sorted((c["customer_code"], c["customer_name"]) for c in crm.state.all("customer_form"))
    with cluster["staging"].connect() as conn:
        for n in range(1, 7):
            rows = sorted(conn.exec_driver_sql(f"select code, name from stg_{n}").all())
            assert [tuple(r) for r in rows] == expected, f"stg_{n}"


def _crowded_windows(arrivals: list[float], quota: int) -> str:
    """Every run of quota + 1 arrivals within one second, as gaps in ms: which request came late."""
    crowded = [arrivals[i:i + quota + 1] for i in range(len(arrivals) - quota)
               if arrivals[i + quota] - arrivals[i] < 1.0]
    return "; ".join(" ".join(f"+{(b - a) * 1000:.0f}" for a, b in itertools.pairwise(run)) for run in crowded)


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()
    return done == pid
