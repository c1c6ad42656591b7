"""The shared HTTP client against httpx.MockTransport: status table, retries, auth, redaction.

Sleeping is injected (recorded, not slept), so these tests run in milliseconds.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from erphub.connectors.auth import BearerToken, OAuth2ClientCredentials
from erphub.connectors.base import SystemContext
from erphub.connectors.http import DEFAULT_STATUS_ACTIONS, Action, HttpClient, Verdict, action_for_status
from erphub.core.errors import AuthError, PermanentError, ProtocolError, RateLimitedError, TransientError
from erphub.monitoring import metrics

_names = itertools.count()
API_KEY = "jdy-test-key-9f8e7d6c5b4a"


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class Harness:
    def __init__(self, handler: Callable[[httpx.Request], httpx.Response], **ctx: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        self.name = f"unit-http-{next(_names)}"
        ctx.setdefault("max_attempts", 4)
        ctx.setdefault("max_retry_seconds", 60.0)
        self.context = SystemContext(name=self.name, transport=httpx.MockTransport(record), **ctx)
        self.auth = ctx.pop("auth", None)

    def client(self, **kwargs: Any) -> HttpClient:
        kwargs.setdefault("auth", BearerToken(API_KEY))
        return HttpClient(
            self.context,
            base_url="http://127.0.0.1:9",
            sleep=self.sleeps.append,
            rng=random.Random(1),
            **kwargs,
        )


def responses(*items: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    queue = list(items)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def test_ok_returns_parsed_body_and_sends_bearer_key() -> None:
    h = Harness(responses(httpx.Response(200, json={"data": [1, 2]})))
    body = h.client().post_json("/api/v5/app/entry/data/list", {"limit": 2})
    assert body == {"data": [1, 2]}
    assert h.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert h.sleeps == []
    assert sample("erphub_http_requests_total", system=h.name, status_class="2xx") == 1


def test_5xx_is_retried_with_growing_jittered_backoff() -> None:
    h = Harness(responses(httpx.Response(503), httpx.Response(502), httpx.Response(500), httpx.Response(200, json={})))
    assert h.client(backoff_initial_s=1.0).post_json("/x", {}) == {}
    assert len(h.requests) == 4
    # equal jitter: attempt n waits within [base/2, base], base = 1, 2, 4
    for n, wait in enumerate(h.sleeps, start=1):
        base = 2 ** (n - 1)
        assert base / 2 <= wait <= base
    assert sample("erphub_http_retries_total", system=h.name, reason="5xx") == 3


def test_retry_after_zero_is_floored_so_it_cannot_hot_loop() -> None:
    h = Harness(responses(httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json={"ok": 1})))
    assert h.client(retry_after_floor_s=0.25).post_json("/x", {}) == {"ok": 1}
    assert h.sleeps == [0.25]
    assert sample("erphub_rate_limited_total", system=h.name) == 1


def test_retry_after_is_honoured() -> None:
    h = Harness(responses(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={})))
    h.client().post_json("/x", {})
    assert h.sleeps == [3.0]


def test_persistent_429_raises_rate_limited_after_max_attempts() -> None:
    h = Harness(responses(httpx.Response(429, headers={"Retry-After": "1"}, json={"code": 8303, "msg": "slow"})))
    with pytest.raises(RateLimitedError) as info:
        h.client().post_json("/x", {})
    assert len(h.requests) == 4
    assert info.value.retry_after == 1.0
    assert "8303" in str(info.value)
    assert sample("erphub_rate_limited_total", system=h.name) == 4


def test_retries_stop_when_total_wait_would_exceed_budget() -> None:
    h = Harness(responses(httpx.Response(429, headers={"Retry-After": "20"})), max_attempts=10, max_retry_seconds=30)
    with pytest.raises(RateLimitedError):
        h.client().post_json("/x", {})
    assert h.sleeps == [20.0]  # a second 20 s wait would pass the 30 s budget
    assert len(h.requests) == 2


def test_400_fails_at_once_with_the_vendor_message() -> None:
    h = Harness(responses(httpx.Response(400, json={"code": 4815, "msg": "筛选条件无效"})))
    with pytest.raises(PermanentError) as info:
        h.client().post_json("/api/v5/app/entry/data/list", {})
    assert not isinstance(info.value, AuthError)
    assert len(h.requests) == 1
    assert "4815" in str(info.value) and "筛选条件无效" in str(info.value)
    assert "/api/v5/app/entry/data/list" in str(info.value)


def test_401_with_a_static_key_is_an_auth_error_without_the_key() -> None:
    h = Harness(responses(httpx.Response(401, json={"code": 8301, "msg": f"bad key {API_KEY}"})))
    with pytest.raises(AuthError) as info:
        h.client().post_json("/x", {})
    assert len(h.requests) == 1
    assert API_KEY not in str(info.value)
    assert "***" in str(info.value)
    assert sample("erphub_auth_failures_total", system=h.name) == 1


def test_status_table_can_be_overridden_per_connector() -> None:
    assert action_for_status(418, DEFAULT_STATUS_ACTIONS) is Action.FAIL
    assert action_for_status(504, DEFAULT_STATUS_ACTIONS) is Action.RETRY
    h = Harness(responses(httpx.Response(409, json={"dup": True})))
    assert h.client(status_actions={409: Action.OK}).post_json("/x", {}) == {"dup": True}


def test_body_classifier_turns_http_200_errors_into_actions() -> None:
    # Kingdee style: HTTP 200 with MsgCode 1 (session lost) then MsgCode 14 (call limit), then success.
    h = Harness(
        responses(
            httpx.Response(200, json={"MsgCode": 1}),
            httpx.Response(200, json={"MsgCode": 14}),
            httpx.Response(200, json={"MsgCode": 0, "Result": "ok"}),
        )
    )

    def classify(response: httpx.Response, body: Any) -> Verdict | None:
        code = body.get("MsgCode") if isinstance(body, dict) else None
        if code == 1:
            return Verdict(Action.REAUTH, "session_expired", "会话信息已丢失，请重新登录")
        if code == 14:
            return Verdict(Action.RATE_LIMITED, "MsgCode 14", retry_after=2.0)
        return None

    auth = CountingToken()
    body = h.client(auth=auth, classify_body=classify).post_json("/x", {})
    assert body["Result"] == "ok"
    assert auth.logins == 2  # logged in again after the session was lost
    assert h.sleeps == [0.0, 2.0]


class CountingToken(OAuth2ClientCredentials):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("http://127.0.0.1:9/token", "client", "s3cr3t-client-secret", **kwargs)
        self.issued = 0

    def fetch(self, client: httpx.Client) -> tuple[str, float | None]:
        self.issued += 1
        return f"token-{self.issued:04d}", 3600.0


def test_oauth_token_is_fetched_from_the_token_endpoint_and_renewed_before_expiry() -> None:
    now = [1000.0]
    tokens = itertools.count(1)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            form = dict(x.split("=") for x in request.content.decode().split("&"))
            assert form["grant_type"] == "client_credentials"
            return httpx.Response(200, json={"access_token": f"tok-{next(tokens)}", "expires_in": 600})
        return httpx.Response(200, json={"auth": request.headers["Authorization"]})

    h = Harness(handler)
    auth = OAuth2ClientCredentials(
        "http://127.0.0.1:9/token", "client-id", "client-secret-value", leeway_s=60, clock=lambda: now[0]
    )
    client = h.client(auth=auth)
    assert client.post_json("/x", {}) == {"auth": "Bearer tok-1"}
    now[0] += 500  # still 100 s left, more than the 60 s leeway
    assert client.post_json("/x", {}) == {"auth": "Bearer tok-1"}
    now[0] += 50  # 50 s left: renew before it expires
    assert client.post_json("/x", {}) == {"auth": "Bearer tok-2"}
    assert [r.url.path for r in h.requests].count("/token") == 2


def test_401_renews_the_token_once_then_gives_up_with_auth_error() -> None:
    h = Harness(responses(httpx.Response(401), httpx.Response(200, json={"ok": True})))
    auth = CountingToken()
    assert h.client(auth=auth).post_json("/x", {}) == {"ok": True}
    assert auth.issued == 2
    h2 = Harness(responses(httpx.Response(401)))
    auth2 = CountingToken()
    with pytest.raises(AuthError) as info:
        h2.client(auth=auth2).post_json("/x", {})
    assert auth2.issued == 2 and len(h2.requests) == 2
    assert "token-000" not in str(info.value) and "s3cr3t" not in str(info.value)


def test_login_rejected_is_auth_error() -> None:
    h = Harness(responses(httpx.Response(401, json={"error": "invalid_client"})))
    auth = OAuth2ClientCredentials("http://127.0.0.1:9/token", "cid", "the-client-secret")
    with pytest.raises(AuthError) as info:
        h.client(auth=auth).post_json("/x", {})
    assert "the-client-secret" not in str(info.value)


def test_timeouts_are_retried_when_idempotent() -> None:
    h = Harness(responses(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.Response(200, json={})))
    assert h.client().post_json("/x", {}) == {}
    assert len(h.requests) == 3
    assert sample("erphub_http_retries_total", system=h.name, reason="timeout") == 1
    assert sample("erphub_http_retries_total", system=h.name, reason="connect") == 1
    assert sample("erphub_http_requests_total", system=h.name, status_class="error") == 2


def test_non_idempotent_request_is_not_retried_after_it_may_have_landed() -> None:
    h = Harness(responses(httpx.ReadTimeout("slow"), httpx.Response(200, json={})))
    with pytest.raises(TransientError) as info:
        h.client().post_json("/create", {}, idempotent=False)
    assert "may have been applied" in str(info.value)
    assert len(h.requests) == 1
    # ...but a refused connection never reached the server, so it is retried
    h2 = Harness(responses(httpx.ConnectError("refused"), httpx.Response(200, json={"id": 1})))
    assert h2.client().post_json("/create", {}, idempotent=False) == {"id": 1}


def test_malformed_json_is_retried_then_a_protocol_error() -> None:
    bad = httpx.Response(200, content=b'{"data": [', headers={"content-type": "application/json"})
    h = Harness(responses(bad, httpx.Response(200, json={"data": []})))
    assert h.client().post_json("/x", {}) == {"data": []}
    h2 = Harness(responses(bad), max_attempts=2)
    with pytest.raises(ProtocolError):
        h2.client().post_json("/x", {})
    assert len(h2.requests) == 2


def test_context_secrets_are_redacted_from_messages() -> None:
    h = Harness(
        responses(httpx.Response(400, json={"msg": "password hunter2-secret is wrong"})),
        secrets=("hunter2-secret",),
    )
    with pytest.raises(PermanentError) as info:
        h.client().post_json("/x", {})
    assert "hunter2-secret" not in str(info.value)


def test_httpx_request_log_lines_carry_no_query_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="httpx")
    h = Harness(responses(httpx.Response(200, json={})))
    h.client().request("GET", "/yonbip/x", params={"access_token": "tok-in-query-123"})
    assert "tok-in-query-123" in str(h.requests[0].url)
    assert "/yonbip/x" in caplog.text and "tok-in-query-123" not in caplog.text
