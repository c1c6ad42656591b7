"""Yonyou YonBIP self-built-app auth: gateway discovery, HMAC-signed token fetch, token in the query.

    GET {discovery}/open-auth/dataCenter/getGatewayAddress?tenantId=…   -> gatewayUrl, tokenUrl
    GET {tokenUrl}/open-auth/selfAppAuth/base/v1/getAccessToken?appKey=…&timestamp=<ms>&signature=…
        signature = URLEncode(Base64(HmacSHA256(key=appSecret, "appKey<k>timestamp<ms>")))
    business calls: {gatewayUrl}/yonbip/…?access_token=…

Built on `connectors.auth.TokenAuth` (renewal `leeway_s` before `expire`, `query_param`). Two
things TokenAuth has no hook for are done here: discovering the gateway at login, and sending
the business call to the discovered gateway — `apply` re-targets a request built against the
discovery host to the gateway (scheme, host, port, path prefix and Host header).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from erphub.connectors.auth import TokenAuth, check_login_response, hmac_sha256
from erphub.core.errors import AuthError, ProtocolError, TransientError

TOKEN_PATH = "/open-auth/selfAppAuth/base/v1/getAccessToken"
DISCOVERY_PATH = "/open-auth/dataCenter/getGatewayAddress"
AUTH_OK = "00000"
TOKEN_GONE = frozenset({"310036", "310001"})  # illegal token, token empty [reference]


def signature(app_key: str, app_secret: str, timestamp_ms: int | str) -> str:
    """Base64(HmacSHA256(appSecret, "appKey<k>timestamp<ms>")) — parameters sorted by name, no separators."""
    return hmac_sha256(app_secret, f"appKey{app_key}timestamp{timestamp_ms}")


def token_query(app_key: str, app_secret: str, timestamp_ms: int | str) -> str:
    """The getAccessToken query string, the signature URL-encoded exactly once."""
    sig = quote(signature(app_key, app_secret, timestamp_ms), safe="")
    return f"appKey={quote(app_key, safe='')}&timestamp={timestamp_ms}&signature={sig}"


class YonyouTokenAuth(TokenAuth):
    def __init__(
        self,
        *,
        tenant_id: str,
        app_key: str,
        app_secret: SecretStr,
        discovery_url: str,
        gateway_url: str | None = None,
        token_url: str | None = None,
        leeway_s: float = 60.0,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        **kwargs: Any,
    ) -> None:
        super().__init__(leeway_s=leeway_s, query_param="access_token", **kwargs)
        self._configured_leeway = leeway_s
        self.tenant_id = tenant_id
        self.app_key = app_key
        self._secret = app_secret
        self.discovery_url = discovery_url.rstrip("/")
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self.token_url = token_url.rstrip("/") if token_url else None
        self._wall_ms = wall_clock_ms

    def is_expired_response(self, response: httpx.Response, body: Any) -> bool:
        return response.status_code == 401 or (isinstance(body, dict) and str(body.get("code")) in TOKEN_GONE)

    def _discover(self, client: httpx.Client) -> None:
        request = client.build_request(
            "GET", f"{self.discovery_url}{DISCOVERY_PATH}", params={"tenantId": self.tenant_id}
        )
        body = check_login_response(client.send(request), "gateway discovery")
        if not isinstance(body, dict) or str(body.get("code")) != AUTH_OK:
            code = body.get("code") if isinstance(body, dict) else None
            raise AuthError(f"gateway discovery refused (code {code}): {_message(body)}")
        data = body.get("data") or {}
        if not data.get("gatewayUrl") or not data.get("tokenUrl"):
            raise ProtocolError("gateway discovery answered without gatewayUrl/tokenUrl")
        self.gateway_url = str(data["gatewayUrl"]).rstrip("/")
        self.token_url = str(data["tokenUrl"]).rstrip("/")

    def fetch(self, client: httpx.Client) -> tuple[str, float | None]:
        if self.gateway_url is None or self.token_url is None:
            self._discover(client)
        query = token_query(self.app_key, self._secret.get_secret_value(), self._wall_ms())
        request = client.build_request("GET", f"{self.token_url}{TOKEN_PATH}?{query}")
        body = check_login_response(client.send(request), "token request")
        if not isinstance(body, dict):
            raise ProtocolError("token request answered something that is not a JSON object")
        code = str(body.get("code"))
        if code != AUTH_OK:
            if code.startswith("5") or code == "429":
                raise TransientError(f"token request failed (code {code})")
            raise AuthError(f"token request refused (code {code}): {_message(body)}")
        data = body.get("data") or {}
        token = data.get("access_token")
        if not token:
            raise ProtocolError("token response has no access_token")
        expire = data.get("expire")
        ttl = float(expire) if expire is not None else None
        if ttl is not None:
            # Renew a fifth of the lifetime early at most, so short test lifetimes still reuse tokens.
            self.leeway_s = min(self._configured_leeway, ttl / 5)
        return str(token), ttl

    def apply(self, request: httpx.Request) -> None:
        super().apply(request)
        if self.gateway_url is None:
            return
        gateway = httpx.URL(self.gateway_url)
        if (
            request.url.host == gateway.host
            and request.url.port == gateway.port
            and request.url.path.startswith(gateway.path.rstrip("/") + "/")
        ):
            return
        request.url = request.url.copy_with(
            scheme=gateway.scheme,
            host=gateway.host,
            port=gateway.port,
            path=gateway.path.rstrip("/") + request.url.path,
        )
        request.headers["Host"] = gateway.netloc.decode("ascii")

    def secret_values(self) -> list[str]:
        return [*super().secret_values(), self._secret.get_secret_value()]


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message", ""))[:200]
    return ""
