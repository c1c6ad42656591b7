"""Auth strategies for the shared HTTP client.

A strategy has four hooks the client calls:

- `ensure(client)`    before each attempt: log in / fetch or renew a token when there is none or
                      it expires within `leeway_s` (renewal *before* expiry, not after a 401);
- `apply(request)`    put credentials on the outgoing request (header, cookie, query, signature);
- `is_expired_response(response, body)`  does this answer mean "your session/token is gone"?
                      (HTTP 401 by default; Kingdee says it with HTTP 200 and MsgCode 1);
- `invalidate()`      forget the credentials so the next `ensure` logs in again.

`can_renew` tells the client whether re-login can help: a static API key cannot, so a 401 with
one is a permanent `AuthError` straight away. `secret_values()` lists what must be redacted from
every log line and exception message.

Login/token calls go through `client.send`, i.e. the bare httpx client: they are counted in
metrics by the caller (`HttpClient`) but never recurse into auth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from erphub.core.errors import AuthError, ProtocolError, TransientError

# The login number an `apply` attached to a request (httpx request extension), handed back to
# `invalidate` when the system refuses the request's credentials.
AUTH_GENERATION = "erphub_auth_generation"

Clock = Callable[[], float]
RequestSigner = Callable[[httpx.Request], None]


def _reveal(value: str | SecretStr | None) -> str:
    if value is None:
        return ""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class AuthStrategy:
    """No auth. Base class of the others."""

    can_renew = False

    def ensure(self, client: httpx.Client) -> None:
        """Make sure usable credentials exist (log in, or renew ones about to expire)."""

    def apply(self, request: httpx.Request) -> None:
        """Attach credentials to a request."""

    def is_expired_response(self, response: httpx.Response, body: Any) -> bool:
        return response.status_code == 401

    def invalidate(self, generation: int | None = None) -> None:
        """Forget credentials; the next `ensure` logs in again. With `generation` (what `apply` put in
        the refused request's AUTH_GENERATION extension), only if those are still the current ones:
        several threads refused on one expired session log in once, not each clearing the new one."""

    def superseded(self, generation: int | None) -> bool:
        """Whether credentials of that login number (AUTH_GENERATION) were replaced by a later login."""
        return False

    def confirm(self, generation: int | None) -> None:
        """The system accepted credentials of that login number."""

    def proven(self, generation: int | None) -> bool:
        """Whether the system ever accepted credentials of that login number (refused now, they expired)."""
        return False

    def secret_values(self) -> list[str]:
        return []


NoAuth = AuthStrategy


class _NumberedLogin(AuthStrategy, ABC):
    """The login numbers of a strategy that logs in again: the current login's (from the subclass's
    own state, replaced as one with its credentials) and the newest one the system accepted (numbers
    only grow, so one number says it)."""

    can_renew = True

    def __init__(self) -> None:
        self._accepted_lock = threading.Lock()
        self._newest_accepted = 0

    @abstractmethod
    def _login_number(self) -> int:
        """The number of the credentials `apply` attaches now."""

    def superseded(self, generation: int | None) -> bool:
        return generation is not None and generation != self._login_number()

    def confirm(self, generation: int | None) -> None:
        if generation is not None and generation > self._newest_accepted:  # most answers: no lock needed
            with self._accepted_lock:
                self._newest_accepted = max(self._newest_accepted, generation)

    def proven(self, generation: int | None) -> bool:
        return generation is not None and 0 < generation <= self._newest_accepted


class BearerToken(AuthStrategy):
    """A static API key sent as `Authorization: Bearer <key>` (Jiandaoyun, private-app tokens)."""

    def __init__(
        self, token: str | SecretStr, *, header: str = "Authorization", scheme: str = "Bearer"
    ) -> None:
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self._header = header
        self._scheme = scheme

    def apply(self, request: httpx.Request) -> None:
        value = self._token.get_secret_value()
        request.headers[self._header] = f"{self._scheme} {value}" if self._scheme else value

    def secret_values(self) -> list[str]:
        return [self._token.get_secret_value()]


def check_login_response(response: httpx.Response, what: str) -> Any:
    """Classify the answer of a login/token call: transient, rejected, or a JSON body."""
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"{what} failed with HTTP {response.status_code}", status=response.status_code)
    if response.status_code in (400, 401, 403):
        raise AuthError(f"{what} rejected with HTTP {response.status_code}", status=response.status_code)
    if response.status_code >= 300:
        raise ProtocolError(f"{what} answered HTTP {response.status_code}", status=response.status_code)
    try:
        return response.json()
    except ValueError:
        raise ProtocolError(f"{what} answered with a body that is not JSON") from None


class TokenAuth(_NumberedLogin):
    """A token fetched from the system and renewed `leeway_s` before it expires.

    Subclasses implement `fetch(client) -> (token, expires_in_seconds | None)`. The token goes in
    a header (`Authorization: Bearer` by default) or a query parameter (`query_param`).
    """

    def __init__(
        self,
        *,
        leeway_s: float = 60.0,
        default_ttl_s: float | None = None,
        header: str = "Authorization",
        scheme: str = "Bearer",
        query_param: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.leeway_s = leeway_s
        self.default_ttl_s = default_ttl_s
        self._header = header
        self._scheme = scheme
        self._query_param = query_param
        self._clock = clock
        super().__init__()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at: float | None = None
        self.logins = 0  # how many times a token was fetched (tests and `systems check` read it)
        # The token and its login number, replaced as one: `apply` reads both without the lock.
        self._current: tuple[str | None, int] = (None, 0)

    @abstractmethod
    def fetch(self, client: httpx.Client) -> tuple[str, float | None]:
        """Obtain a token and its lifetime in seconds (None: unknown)."""

    def _fresh(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or self._clock() < self._expires_at - self.leeway_s

    def ensure(self, client: httpx.Client) -> None:
        with self._lock:
            if self._fresh():
                return
            token, expires_in = self.fetch(client)
            ttl = expires_in if expires_in is not None else self.default_ttl_s
            self._token = token
            self._expires_at = self._clock() + ttl if ttl is not None else None
            self.logins += 1
            self._current = (token, self.logins)

    def apply(self, request: httpx.Request) -> None:
        current, generation = self._current
        token = current or ""
        request.extensions[AUTH_GENERATION] = generation
        if self._query_param:
            request.url = request.url.copy_merge_params({self._query_param: token})
        else:
            request.headers[self._header] = f"{self._scheme} {token}" if self._scheme else token

    def invalidate(self, generation: int | None = None) -> None:
        with self._lock:
            if self.superseded(generation):
                return  # another thread has logged in since that request: keep its token
            self._token = None
            self._expires_at = None
            self._current = (None, self._current[1])

    def _login_number(self) -> int:
        return self._current[1]

    def secret_values(self) -> list[str]:
        return [self._token] if self._token else []


class OAuth2ClientCredentials(TokenAuth):
    """OAuth2 `client_credentials` grant (RFC 6749 §4.4); `extra` adds grant fields."""

    grant_type = "client_credentials"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        *,
        scope: str | None = None,
        extra: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = (
            client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        )
        self.scope = scope
        self.extra = dict(extra or {})
        self.token_response: dict[str, Any] = {}  # e.g. Salesforce's instance_url

    def grant(self) -> dict[str, str]:
        data = {
            "grant_type": self.grant_type,
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }
        if self.scope:
            data["scope"] = self.scope
        data.update(self.extra)
        return data

    def fetch(self, client: httpx.Client) -> tuple[str, float | None]:
        request = client.build_request("POST", self.token_url, data=self.grant())
        body = check_login_response(client.send(request), "token request")
        if not isinstance(body, dict) or not body.get("access_token"):
            raise ProtocolError("token response has no access_token")
        self.token_response = {k: v for k, v in body.items() if k not in ("access_token", "refresh_token")}
        self._after_token(body)
        expires_in = body.get("expires_in")
        return str(body["access_token"]), float(expires_in) if expires_in is not None else None

    def _after_token(self, body: dict[str, Any]) -> None:
        """Hook for grants that rotate extra state (refresh tokens)."""

    def secret_values(self) -> list[str]:
        return [*super().secret_values(), self._client_secret.get_secret_value()]


class OAuth2RefreshToken(OAuth2ClientCredentials):
    """OAuth2 `refresh_token` grant; keeps the rotated refresh token when the server sends one."""

    grant_type = "refresh_token"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        refresh_token: str | SecretStr,
        **kwargs: Any,
    ) -> None:
        super().__init__(token_url, client_id, client_secret, **kwargs)
        self._refresh = refresh_token if isinstance(refresh_token, SecretStr) else SecretStr(refresh_token)

    def grant(self) -> dict[str, str]:
        data = super().grant()
        data["refresh_token"] = self._refresh.get_secret_value()
        return data

    def _after_token(self, body: dict[str, Any]) -> None:
        if body.get("refresh_token"):
            self._refresh = SecretStr(str(body["refresh_token"]))

    def secret_values(self) -> list[str]:
        return [*super().secret_values(), self._refresh.get_secret_value()]


def _with_cookies(header: str | None, cookies: dict[str, str]) -> str:
    """A Cookie header carrying *cookies*, and of the other cookies already in it only those with other
    names: a cookie the client's jar kept from an earlier answer (an old session id) must not ride
    along, and a server reading the first of two same-named cookies would take the stale one."""
    kept = [pair for pair in (header or "").split(";")
            if pair.strip() and pair.split("=", 1)[0].strip() not in cookies]
    return "; ".join([*(pair.strip() for pair in kept), *(f"{k}={v}" for k, v in cookies.items())])


class SessionAuth(_NumberedLogin):
    """A login call that yields a session (cookies and/or headers), renewed when it is lost.

    Subclasses implement `login(client) -> (headers, cookies)`; Kingdee's WebAPI session login
    plugs in here and overrides `is_expired_response` for its HTTP-200 "context lost" answers.
    `max_age_s` renews a session proactively when the system is known to expire it.
    """

    def __init__(self, *, max_age_s: float | None = None, clock: Clock = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        super().__init__()
        self._lock = threading.Lock()
        # Headers, cookies and the login number, replaced as one: `apply` reads them without the lock,
        # and a request must never carry one session's header with another's cookie.
        self._session: tuple[dict[str, str], dict[str, str], int] = ({}, {}, 0)
        self._since: float | None = None
        self.logins = 0

    @property
    def _headers(self) -> dict[str, str]:
        return self._session[0]

    @property
    def _cookies(self) -> dict[str, str]:
        return self._session[1]

    @abstractmethod
    def login(self, client: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
        """Log in; return the (headers, cookies) that carry the session."""

    def ensure(self, client: httpx.Client) -> None:
        with self._lock:
            if self._since is not None and (
                self.max_age_s is None or self._clock() - self._since < self.max_age_s
            ):
                return
            headers, cookies = self.login(client)
            self._since = self._clock()
            self.logins += 1
            self._session = (headers, cookies, self.logins)

    def apply(self, request: httpx.Request) -> None:
        headers, cookies, generation = self._session
        request.extensions[AUTH_GENERATION] = generation
        for name, value in headers.items():
            request.headers[name] = value
        if cookies:
            request.headers["Cookie"] = _with_cookies(request.headers.get("Cookie"), cookies)

    def invalidate(self, generation: int | None = None) -> None:
        with self._lock:
            if self.superseded(generation):
                return  # another thread has logged in since that request: keep its session
            self._since = None
            self._session = ({}, {}, self._session[2])

    def _login_number(self) -> int:
        return self._session[2]

    def secret_values(self) -> list[str]:
        return [*self._headers.values(), *self._cookies.values()]


class Signed(AuthStrategy):
    """Wraps a strategy and signs every request after its credentials are applied.

    `signer(request)` may read the body and set headers (Kingdee SDK-style HMAC headers,
    Yonyou's signature). `secrets` are the signing keys, for redaction.
    """

    def __init__(
        self, inner: AuthStrategy, signer: RequestSigner, *, secrets: list[str] | None = None
    ) -> None:
        self.inner = inner
        self.signer = signer
        self._secrets = list(secrets or [])
        self.can_renew = inner.can_renew

    def ensure(self, client: httpx.Client) -> None:
        self.inner.ensure(client)

    def apply(self, request: httpx.Request) -> None:
        self.inner.apply(request)
        self.signer(request)

    def is_expired_response(self, response: httpx.Response, body: Any) -> bool:
        return self.inner.is_expired_response(response, body)

    def invalidate(self, generation: int | None = None) -> None:
        self.inner.invalidate(generation)

    def superseded(self, generation: int | None) -> bool:
        return self.inner.superseded(generation)

    def confirm(self, generation: int | None) -> None:
        self.inner.confirm(generation)

    def proven(self, generation: int | None) -> bool:
        return self.inner.proven(generation)

    def secret_values(self) -> list[str]:
        return [*self.inner.secret_values(), *self._secrets]


def hmac_sha256(key: str | bytes, message: str | bytes, *, encoding: str = "base64") -> str:
    """HMAC-SHA256 as base64 (Yonyou, Kingdee SDK) or hex."""
    k = key.encode() if isinstance(key, str) else key
    m = message.encode() if isinstance(message, str) else message
    digest = hmac.new(k, m, hashlib.sha256).digest()
    return base64.b64encode(digest).decode() if encoding == "base64" else digest.hex()


def reveal(value: str | SecretStr | None) -> str:
    """The plain value of a secret (for building a strategy; never log the result)."""
    return _reveal(value)
