"""Pushing a one-shot run's metrics, against a fake Pushgateway on 127.0.0.1."""

from __future__ import annotations

import base64
import logging
import socket
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


def test_push_replaces_the_pipeline_group_with_only_that_pipelines_samples(gateway) -> None:
    fake, url = gateway
    metrics.observe_run("push_orders", ok=False, duration_s=3.0, finished_at=1_700_000_000.0)
    metrics.count_records("push_orders", "dead_lettered", 2)
    metrics.count_records("push_other", "created", 5)  # another pipeline in the same process
    metrics.observe_http("push_kingdee", 429, 0.1)

    assert push_run_metrics(url, "push_orders") is True

    [push] = fake.pushes
    assert push.method == "PUT"  # replaces the group: no stale series from an older run
    assert push.path == "/metrics/job/erphub/pipeline/push_orders"
    series = _series(push.body)
    assert series[("erphub_runs_total", (("pipeline", "push_orders"), ("status", "failed")))] == 1
    assert series[("erphub_last_run_timestamp_seconds", (("pipeline", "push_orders"),))] == 1_700_000_000
    assert series[("erphub_records_total", (("outcome", "dead_lettered"), ("pipeline", "push_orders")))] == 2
    assert series[("erphub_http_requests_total", (("status_class", "4xx"), ("system", "push_kingdee")))] >= 1
    assert not [k for k in series if dict(k[1]).get("pipeline") == "push_other"]


def test_push_with_a_store_reader_sends_the_store_view(gateway) -> None:
    fake, url = gateway
    metrics.dead_letters.labels(pipeline="push_store").set(99)
    state = FakeStoreState(
        open_letters={"push_store": 4, "push_elsewhere": 1},
        times={"push_store": (100.0, 200.0)},
        intervals={"push_store": 3600.0},
    )
    settings = PushgatewaySettings(url=url, job="erphub-test")
    assert push_run_metrics(settings, "push_store", state_reader=state) is True
    [push] = fake.pushes
    assert push.path == "/metrics/job/erphub-test/pipeline/push_store"
    series = _series(push.body)
    assert series[("erphub_dead_letters", (("pipeline", "push_store"),))] == 4
    assert series[("erphub_last_success_timestamp_seconds", (("pipeline", "push_store"),))] == 100
    assert ("erphub_dead_letters", (("pipeline", "push_elsewhere"),)) not in series


def test_basic_auth_is_sent_and_the_password_never_logged(gateway, caplog) -> None:
    fake, url = gateway
    fake.status = 500
    settings = PushgatewaySettings(url=url, username="hub", password=SecretStr(CANARY))
    with caplog.at_level(logging.WARNING, logger="erphub.monitoring.pushgateway"):
        assert push_run_metrics(settings, "push_auth") is False  # a 500 never fails the run
    [push] = fake.pushes
    assert push.authorization == "Basic " + base64.b64encode(f"hub:{CANARY}".encode()).decode()
    assert "pushgateway push failed for pipeline push_auth" in caplog.text
    assert CANARY not in caplog.text


def test_unreachable_gateway_returns_false() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = PushgatewaySettings(url=f"http://127.0.0.1:{port}", timeout_s=2)
    assert push_run_metrics(settings, "push_nowhere") is False
