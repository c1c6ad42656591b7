"""The HTTP client against a real loopback sandbox with injected faults (sandbox.common)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from erphub.connectors.auth import BearerToken
from erphub.connectors.base import SystemContext
from erphub.connectors.http import HttpClient
from erphub.core.errors import TransientError
from erphub.sandbox.common import SandboxApp, SandboxServer, WindowLimiter

_n = itertools.count()


class Store:
    def __init__(self) -> None:
        self.writes: list[dict[str, object]] = []


@pytest.fixture()
def sandbox() -> Iterator[tuple[SandboxApp, SandboxServer, Store]]:
    store = Store()
    throttle = WindowLimiter(1000)

    async def write(request: Request) -> JSONResponse:
        if throttle.hit("write") is not None:
            return JSONResponse({"code": 8304, "msg": "too fast"}, status_code=429)
        store.writes.append(await request.json())
        return JSONResponse({"status": "success", "n": len(store.writes)})

    app = Starlette(routes=[Route("/api/write", write, methods=["POST"])])
    sb = SandboxApp.build(
        "unit",
        app,
        credentials={"api_key": "k"},
        description="unit test sandbox",
        error_body=lambda status, reason: {"code": status, "msg": reason},
    )
    with SandboxServer(sb) as server:
        yield sb, server, store


def client_for(server: SandboxServer, **ctx: Any) -> HttpClient:
    context = SystemContext(name=f"unit-sbx-{next(_n)}", read_timeout_s=ctx.pop("read_timeout_s", 2.0), **ctx)
    return HttpClient(context, base_url=server.base_url, auth=BearerToken("key-abcdef"), sleep=lambda s: None)


def test_lost_response_is_retried_and_the_server_applied_it_twice(sandbox: tuple) -> None:
    sb, server, _store = sandbox
    sb.faults.lose_next_response("write")
    body = client_for(server).post_json("/api/write", {"k": 1})
    assert body["n"] == 2  # the first write landed although its answer was lost
    statuses = [e.status for e in sb.log.entries("write")]
    assert statuses == [None, 200]


def test_lost_response_on_a_non_idempotent_write_is_reported_not_retried(sandbox: tuple) -> None:
    sb, server, store = sandbox
    sb.faults.lose_next_response("write")
    with pytest.raises(TransientError, match="may have been applied"):
        client_for(server).post_json("/api/write", {"k": 1}, idempotent=False)
    assert len(store.writes) == 1


def test_dropped_connection_does_not_apply_and_is_retried(sandbox: tuple) -> None:
    sb, server, _store = sandbox
    sb.faults.drop("write", 2)
    assert client_for(server).post_json("/api/write", {"k": 1})["n"] == 1
    assert sb.log.count("write") == 3


def test_timeout_then_success(sandbox: tuple) -> None:
    sb, server, _store = sandbox
    sb.faults.timeouts("write", 1, seconds=1.0)
    assert client_for(server, read_timeout_s=0.2).post_json("/api/write", {})["status"] == "success"


def test_faults_controlled_over_http_out_of_process(sandbox: tuple) -> None:
    sb, server, _store = sandbox
    with httpx.Client(base_url=server.base_url) as raw:
        r = raw.post(
            "/__sandbox__/faults",
            json={"endpoint": "write", "burst_429": 2, "retry_after": 0, "malformed": 1},
        )
        assert r.json()["faults"]["write"]["burst_429"] == 2
        bad = raw.post("/__sandbox__/faults", json={"endpoint": "write", "no_such_fault": 1})
        assert bad.status_code == 400
    body = client_for(server).post_json("/api/write", {"k": 1})
    # 429, 429, malformed (applied: write 1), then a clean answer (write 2)
    assert body["n"] == 2
    assert [e.status for e in sb.log.entries("write")] == [429, 429, 200, 200]
    with httpx.Client(base_url=server.base_url) as raw:
        log = raw.get("/__sandbox__/requests").json()["requests"]
        assert len(log) == 4
        raw.post("/__sandbox__/faults", json={"clear": True})
        assert raw.get("/__sandbox__/faults").json() == {"faults": {}}


def test_error_rate_and_latency(sandbox: tuple) -> None:
    sb, server, _store = sandbox
    sb.faults.error_rate("write", 0.5, status=502)
    sb.faults.latency("write", 0.01)
    client = client_for(server, max_attempts=20)
    for i in range(10):
        client.post_json("/api/write", {"i": i})
    statuses = [e.status for e in sb.log.entries("write")]
    assert statuses.count(200) == 10 and 502 in statuses


def test_window_limiter_counts_only_accepted_hits() -> None:
    w = WindowLimiter(2, window_s=1.0)
    assert w.hit(now=0.0) is None and w.hit(now=0.1) is None
    assert w.hit(now=0.5) == pytest.approx(0.5)
    assert w.hit(now=1.0) is None  # the first hit left the window
    assert w.hit("other", now=1.0) is None
