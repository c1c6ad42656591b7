"""A JSON-RPC client for Tryton 8.x on the shared HttpClient (auth, retries, throttling, metrics).

Verified against trytond 8.2.1 (see shared/reference/peers.md and this package's tests):
- per-database calls go to `POST /<db>/rpc/`, database-less ones to `POST /rpc/`; the body is
  exactly `{"id", "method", "params"}`;
- `common.db.login` with `[login, {"password": ...}, language]` returns `[user_id, token, bus]`;
  the session travels as `Authorization: Session base64(login:user_id:token)`; a missing or
  expired session answers HTTP 401 with an empty body (the HttpClient logs in again, once), a
  wrong password HTTP 401 with an HTML page, repeated failures HTTP 429;
- business errors come back as HTTP 200 `{"error": ["UserError", [message, description, ...]]}`;
  they are raised here as `TrytonUserError` so a connector can turn them into per-record errors;
- every model call takes the context as its last positional parameter (HTTP 422 otherwise); the
  context comes from `model.res.user.get_preferences` `[true, {}]` and holds the company.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import threading
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from erphub.connectors.auth import SessionAuth
from erphub.connectors.base import SystemContext
from erphub.connectors.http import HttpClient
from erphub.connectors.tryton import codec
from erphub.core.errors import (
    AuthError,
    PermanentError,
    ProtocolError,
    RateLimitedError,
    TransientError,
    TrytonUserError,
)

JSON_HEADERS = {"Content-Type": "application/json"}
# Tryton answers business failures inside HTTP 200; these kinds say "try again later".
TRANSIENT_ERRORS = frozenset({"ConcurrencyException", "DatabaseOperationalError", "RateLimitException"})


class TrytonSession(SessionAuth):
    """`common.db.login` -> `Authorization: Session base64(login:uid:token)`."""

    def __init__(self, database: str, login: str, password: SecretStr, *, language: str = "en") -> None:
        super().__init__()
        self.database = database
        self.login_name = login
        self._password = password
        self.language = language
        self.user_id: int | None = None

    def login(self, client: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
        body = {
            "id": 0,
            "method": "common.db.login",
            "params": [self.login_name, {"password": self._password.get_secret_value()}, self.language],
        }
        response = client.post(f"/{self.database}/rpc/", content=codec.dumps(body), headers=JSON_HEADERS)
        if response.status_code in (401, 403):
            raise AuthError("Tryton refused the login (wrong login or password)", status=response.status_code)
        if response.status_code == 429:
            raise RateLimitedError("Tryton refused the login: too many attempts", status=429)
        if response.status_code >= 500:
            raise TransientError(
                f"Tryton login answered HTTP {response.status_code}", status=response.status_code
            )
        if response.status_code != 200:
            raise PermanentError(
                f"Tryton login answered HTTP {response.status_code}", status=response.status_code
            )
        try:
            reply = codec.loads(response.content)
        except ValueError:
            raise ProtocolError("Tryton login answer is not JSON") from None
        if "error" in reply:
            kind = _error_kind(reply["error"])
            if kind == "KeyError":  # 8.2.1 without `-d <db>`: the pool of the DB is not loaded
                raise PermanentError(
                    f"database {self.database!r} is not loaded by the server (start trytond with -d)"
                )
            raise AuthError(f"Tryton refused the login: {kind}")
        user_id, token = reply["result"][0], reply["result"][1]
        self.user_id = int(user_id)
        session = base64.b64encode(f"{self.login_name}:{user_id}:{token}".encode()).decode("ascii")
        return {"Authorization": f"Session {session}"}, {}

    def secret_values(self) -> list[str]:
        values = [self._password.get_secret_value(), *super().secret_values()]
        # The bare session token too, in case a message quotes it undecoded.
        header = self._headers.get("Authorization", "")
        if header.startswith("Session "):
            with contextlib.suppress(ValueError):
                values.append(base64.b64decode(header[8:]).decode().rsplit(":", 1)[-1])
        return values

    def authorization(self) -> str | None:
        """The current `Authorization` header value, or None before the first login."""
        return self._headers.get("Authorization")


def _error_kind(error: Any) -> str:
    if isinstance(error, list) and error:
        return str(error[0])
    return str(error)


def _error_message(error: Any) -> str:
    if isinstance(error, list) and len(error) > 1:
        detail = error[1]
        if isinstance(detail, list) and detail:
            parts = [str(p) for p in detail[:2] if p]
            return " ".join(parts)
        return str(detail)
    return str(error)


class TrytonRPC:
    """Calls into one Tryton database; `model(...)` helpers add the user context."""

    def __init__(
        self,
        context: SystemContext,
        *,
        url: str,
        database: str,
        login: str,
        password: SecretStr,
        language: str = "en",
    ) -> None:
        self.system = context.name
        self.database = database
        self.session = TrytonSession(database, login, password, language=language)
        self.http = HttpClient(context, base_url=url.rstrip("/"), auth=self.session)
        self._ids = itertools.count(1)
        self._context: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # -- raw calls -------------------------------------------------------------------------
    def call(self, method: str, params: Sequence[Any], *, idempotent: bool = True, db: bool = True) -> Any:
        body = {"id": next(self._ids), "method": method, "params": list(params)}
        path = f"/{self.database}/rpc/" if db else "/rpc/"
        result = self.http.request(
            "POST",
            path,
            content=codec.dumps(body),
            headers=JSON_HEADERS,
            endpoint=method,
            idempotent=idempotent,
        )
        try:
            reply = codec.loads(result.response.content)
        except ValueError:
            raise ProtocolError(f"{method}: answer is not JSON", system=self.system) from None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise ProtocolError(f"{method}: answer has no result or error", system=self.system)
        if "error" in reply and reply["error"] is not None:
            kind = _error_kind(reply["error"])
            message = _error_message(reply["error"])
            if kind in TRANSIENT_ERRORS:
                raise TransientError(f"{method}: {kind}: {message}", system=self.system)
            raise TrytonUserError(kind, message, system=self.system)
        return reply.get("result")

    def server_version(self) -> str:
        return str(self.call("common.server.version", [], db=False))

    @property
    def context(self) -> dict[str, Any]:
        """The user's context (company, language...), fetched once per connector."""
        with self._lock:
            if self._context is None:
                prefs = self.call("model.res.user.get_preferences", [True, {}])
                # Keep plain values only: rec_name keys ("company.rec_name") and the locale are noise.
                self._context = {k: v for k, v in prefs.items() if "." not in k and k != "locale"}
            return dict(self._context)

    # -- model helpers ---------------------------------------------------------------------
    def model(
        self,
        model: str,
        method: str,
        *args: Any,
        idempotent: bool = True,
        context: dict[str, Any] | None = None,
    ) -> Any:
        ctx = self.context
        if context:
            ctx.update(context)
        return self.call(f"model.{model}.{method}", [*args, ctx], idempotent=idempotent)

    def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: Sequence[str],
        *,
        offset: int = 0,
        limit: int | None = None,
        order: list[list[str]] | None = None,
    ) -> list[dict[str, Any]]:
        result = self.model(model, "search_read", domain, offset, limit, order, list(fields))
        return list(result or [])

    def read(self, model: str, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return list(self.model(model, "read", list(ids), list(fields)) or [])

    def search(self, model: str, domain: list[Any], *, limit: int | None = None) -> list[int]:
        return [int(i) for i in self.model(model, "search", domain, 0, limit, None) or []]

    def create(self, model: str, values: list[dict[str, Any]]) -> list[int]:
        return [int(i) for i in self.model(model, "create", values, idempotent=False)]

    def write(self, model: str, ids: Sequence[int], values: dict[str, Any]) -> None:
        # Writing the same values twice is harmless, so a lost answer may be retried.
        self.model(model, "write", list(ids), values)

    def button(self, model: str, name: str, ids: Sequence[int]) -> None:
        self.model(model, name, list(ids), idempotent=False)

    def close(self) -> None:
        self.http.close()
