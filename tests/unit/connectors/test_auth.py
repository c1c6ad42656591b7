"""Auth strategies: session login and renewal, refresh-token rotation, signing, secret listing."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest
from pydantic import SecretStr

from erphub.connectors.auth import (
    AuthStrategy,
    BearerToken,
    OAuth2RefreshToken,
    SessionAuth,
    Signed,
    TokenAuth,
    hmac_sha256,
)
from erphub.connectors.base import SystemContext
from erphub.connectors.http import HttpClient


class FakeSession(SessionAuth):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.n = 0

    def login(self, client: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
        self.n += 1
        return {"kdservice-sessionid": f"sid-{self.n}"}, {"ASP.NET_SessionId": f"asp-{self.n}"}


def test_session_logs_in_once_applies_header_and_cookie_and_relogs_after_invalidate() -> None:
    auth = FakeSession()
    client = httpx.Client()
    auth.ensure(client)
    auth.ensure(client)
    request = client.build_request("POST", "http://127.0.0.1:9/x")
    auth.apply(request)
    assert request.headers["kdservice-sessionid"] == "sid-1"
    assert "ASP.NET_SessionId=asp-1" in request.headers["Cookie"]
    assert auth.logins == 1
    auth.invalidate()
    auth.ensure(client)
    assert auth.logins == 2
    assert "sid-2" in auth.secret_values()


def test_session_max_age_renews_proactively() -> None:
    now = [0.0]
    auth = FakeSession(max_age_s=100, clock=lambda: now[0])
    client = httpx.Client()
    auth.ensure(client)
    now[0] = 99
    auth.ensure(client)
    now[0] = 101
    auth.ensure(client)
    assert auth.logins == 2


def test_refresh_token_grant_keeps_the_rotated_refresh_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        form = dict(p.split("=") for p in request.content.decode().split("&"))
        seen.append(form["refresh_token"])
        return httpx.Response(
            200, json={"access_token": "at", "refresh_token": f"rt{len(seen) + 1}", "expires_in": 10}
        )

    client = httpx.Client(transport=httpx.MockTransport(handler))
    auth = OAuth2RefreshToken("http://127.0.0.1:9/token", "cid", SecretStr("csecret"), "rt1", leeway_s=60)
    auth.ensure(client)  # expires_in 10 < leeway: every ensure renews
    auth.ensure(client)
    assert seen == ["rt1", "rt2"]
    assert {"csecret", "rt3", "at"} <= set(auth.secret_values())


def test_signed_wraps_an_inner_strategy() -> None:
    def sign(request: httpx.Request) -> None:
        request.headers["X-Api-Signature"] = hmac_sha256("key", request.url.path)

    auth = Signed(BearerToken("k" * 8), sign, secrets=["signing-key"])
    request = httpx.Request("POST", "http://127.0.0.1:9/p")
    auth.apply(request)
    assert request.headers["Authorization"] == "Bearer " + "k" * 8
    assert request.headers["X-Api-Signature"] == hmac_sha256("key", "/p")
    assert "signing-key" in auth.secret_values()
    assert len(hmac_sha256("a", "b", encoding="hex")) == 64


class _ExpiringServer:
    """Accepts only the newest credentials it issued, and drops them every `every` accepted calls."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.lock = threading.Lock()
        self.issued = 0
        self.valid: str | None = None
        self.accepted = 0
        self.expiries = 0

    def issue(self) -> str:
        with self.lock:
            self.issued += 1
            self.valid = f"cred-{self.issued}"
            return self.valid

    def handle(self, request: httpx.Request) -> httpx.Response:
        seen = request.headers.get("Authorization", "").removeprefix("Bearer ")
        seen = seen or request.headers.get("kdservice-sessionid", "")
        time.sleep(0.001)  # the other threads' requests are in flight meanwhile
        with self.lock:
            if seen != self.valid or self.valid is None:
                return httpx.Response(401)
            self.accepted += 1
            if self.accepted % self.every == 0:
                self.valid, self.expiries = None, self.expiries + 1
        return httpx.Response(200, json={"ok": True})


class _ServerToken(TokenAuth):
    def __init__(self, server: _ExpiringServer) -> None:
        super().__init__()
        self.server = server

    def fetch(self, client: httpx.Client) -> tuple[str, float | None]:
        return self.server.issue(), None


class _ServerSession(SessionAuth):
    def __init__(self, server: _ExpiringServer) -> None:
        super().__init__()
        self.server = server

    def login(self, client: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
        session = self.server.issue()
        return {"kdservice-sessionid": session}, {"kdservice-sessionid": session}


@pytest.mark.parametrize("strategy", [_ServerToken, _ServerSession])
def test_threads_refused_on_one_expired_login_log_in_once(strategy: type[AuthStrategy]) -> None:
    """Eight threads, the server dropping the credentials every 25 calls. Before, each refused thread
    cleared the credentials another had just fetched: several logins per expiry (805 for 200 measured)."""
    server = _ExpiringServer(every=25)
    auth = strategy(server)  # type: ignore[call-arg]
    context = SystemContext(name="unit-auth-threads", transport=httpx.MockTransport(server.handle), max_attempts=6)
    client = HttpClient(context, base_url="http://127.0.0.1:9", auth=auth, sleep=lambda _s: None,
                        rng=random.Random(1))
    errors: list[BaseException] = []

    def calls() -> None:
        try:
            for _ in range(40):
                assert client.post_json("/x", {}) == {"ok": True}
        except BaseException as exc:  # reported below, with the counts
            errors.append(exc)

    threads = [threading.Thread(target=calls) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert server.accepted == 320
    assert server.issued == server.expiries + 1


def test_a_session_cookie_the_jar_kept_from_an_earlier_answer_does_not_ride_along() -> None:
    """The jar held the previous login's session cookie (set by an answer after the login cleared
    it): the request carries the current one only, once, and the jar's other cookies stay."""
    auth = FakeSession()
    client = httpx.Client()
    auth.ensure(client)
    client.cookies.set("ASP.NET_SessionId", "asp-old")
    client.cookies.set("lang", "zh-CN")
    request = client.build_request("POST", "http://127.0.0.1:9/x")
    auth.apply(request)
    pairs = [pair.strip() for pair in request.headers["Cookie"].split(";")]
    assert sorted(pairs) == ["ASP.NET_SessionId=asp-1", "lang=zh-CN"]
