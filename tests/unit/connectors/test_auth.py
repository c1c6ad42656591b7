"""Auth strategies: session login and renewal, refresh-token rotation, signing, secret listing."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from erphub.connectors.auth import BearerToken, OAuth2RefreshToken, SessionAuth, Signed, hmac_sha256


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
