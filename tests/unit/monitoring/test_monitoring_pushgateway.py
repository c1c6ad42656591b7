"""Pushing one-shot runs' metrics, against a fake Pushgateway on 127.0.0.1."""

from __future__ import annotations

import base64
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from erphub.monitoring import metrics
from erphub.monitoring.pushgateway import PushgatewaySettings, push_run_metrics
from erphub.sandbox.serve import SandboxServer
from tests.unit.monitoring.fakes import CANARY, FakeStoreState


@dataclass
class Push:
    method: str
    path: str
    body: str
    authorization: str | None


@dataclass
class FakePushgateway:
    """Accepts pushes like the real one (PUT/POST /metrics/job/<job>/<label>/<value>...)."""

    status: int = 200
    pushes: list[Push] = field(default_factory=list)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = (await request.body()).decode()
            auth = request.headers.get("authorization")
            self.pushes.append(Push(request.method, request.url.path, body, auth))
            return Response(status_code=self.status)

        methods = ["PUT", "POST", "DELETE"]
        return Starlette(routes=[Route("/metrics/job/{rest:path}", receive, methods=methods)])


def _series(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


@pytest.fixture
def gateway() -> Iterator[tuple[FakePushgateway, str]]:
    fake = FakePushgateway()
    with SandboxServer(fake.app()) as server:
        yield fake, server.base_url


PUSH_FROM_A_FRESH_PROCESS = """
import sys
from pathlib import Path
from erphub.monitoring import metrics, multiprocess
from erphub.monitoring.pushgateway import PushgatewaySettings, push_run_metrics
multiprocess.enable(Path(sys.argv[1]))
metrics.count_auth_failure("push_kingdee")
metrics.observe_run("push_orders", ok=False, duration_s=3.0, finished_at=1_700_000_000.0)
ok = push_run_metrics(PushgatewaySettings(url=sys.argv[2], instance="hub-a"))
sys.exit(0 if ok else 1)
"""


def test_one_shot_runs_push_cumulative_counters_so_increase_sees_every_run(gateway, tmp_path) -> None:
    """Two one-shot runs, each its own process with one auth failure: the second push says 2, not a
    fresh 1 (on a per-process push increase() stays 0 and ErphubAuthFailing never fires)."""
    fake, url = gateway
    folder = tmp_path / "metrics"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", PUSH_FROM_A_FRESH_PROCESS, str(folder), url], check=True,
                       env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}, timeout=60)
    first, second = fake.pushes
    assert first.method == second.method == "PUT"  # replaces the hub's group
    assert second.path == "/metrics/job/erphub/instance/hub-a"
    auth = ("erphub_auth_failures_total", (("system", "push_kingdee"),))
    failed = ("erphub_runs_total", (("pipeline", "push_orders"), ("status", "failed")))
    assert _series(first.body)[auth] == 1 and _series(second.body)[auth] == 2
    assert _series(first.body)[failed] == 1 and _series(second.body)[failed] == 2
    # No per-process label leaks out of multiprocess mode.
    assert not [k for k in _series(second.body) if "pid" in dict(k[1])]


def test_push_with_a_store_reader_sends_the_store_view_of_every_pipeline(gateway) -> None:
    fake, url = gateway
    metrics.dead_letters.labels(pipeline="push_store").set(99)
    state = FakeStoreState(
        open_letters={"push_store": 4, "push_elsewhere": 1},
        times={"push_store": (100.0, 200.0)},
        intervals={"push_store": 3600.0},
        configured={"push_store": 50.0},
    )
    settings = PushgatewaySettings(url=url, job="erphub-test", instance="hub-b")
    assert push_run_metrics(settings, state_reader=state) is True
    [push] = fake.pushes
    assert push.path == "/metrics/job/erphub-test/instance/hub-b"
    series = _series(push.body)
    assert series[("erphub_dead_letters", (("pipeline", "push_store"),))] == 4  # the store, not the gauge's 99
    assert series[("erphub_dead_letters", (("pipeline", "push_elsewhere"),))] == 1
    assert series[("erphub_last_success_timestamp_seconds", (("pipeline", "push_store"),))] == 100
    assert series[("erphub_pipeline_configured_timestamp_seconds", (("pipeline", "push_store"),))] == 50


def test_basic_auth_is_sent_and_the_password_never_logged(gateway, caplog) -> None:
    fake, url = gateway
    fake.status = 500
    settings = PushgatewaySettings(url=url, username="hub", password=SecretStr(CANARY), instance="push_auth")
    with caplog.at_level(logging.WARNING, logger="erphub.monitoring.pushgateway"):
        assert push_run_metrics(settings) is False  # a 500 never fails the run
    [push] = fake.pushes
    assert push.authorization == "Basic " + base64.b64encode(f"hub:{CANARY}".encode()).decode()
    assert "pushgateway push failed for instance push_auth" in caplog.text
    assert CANARY not in caplog.text


def test_unreachable_gateway_returns_false() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = PushgatewaySettings(url=f"http://127.0.0.1:{port}", timeout_s=2)
    assert push_run_metrics(settings) is False
