"""The shared HTTP client: one httpx.Client per system with auth, retries, throttling and metrics.

What happens to an answer is decided by a table from HTTP status to action (below), which a
connector can override, plus an optional body classifier for systems that report errors inside
HTTP 200 answers (Kingdee's MsgCode 1 "context lost" -> reauth, MsgCode 14 "call limit" ->
rate limited). Actions:

    ok            return the parsed body
    retry         transient: back off exponentially with jitter and try again
    rate_limited  the system said "slow down": counted (a state, not an error), wait for its
                  Retry-After (never less than `retry_after_floor_s`, so `Retry-After: 0`
                  cannot hot-loop) or back off, then try again
    reauth        the session/token is gone: forget it, log in again, retry at once (once)
    fail          permanent: raise at once

Retries are bounded by `context.max_attempts` and by `context.max_retry_seconds` of total
waiting. After the last attempt the client raises from erphub.core.errors: `RateLimitedError`,
`TransientError`, `AuthError`, `PermanentError` or `ProtocolError`. Messages name the method
and the path (never the query string, never headers or bodies) and are passed through
`redact`, so no secret reaches a log line, an exception or a dead letter.

A request marked `idempotent=False` is not retried after a failure that may have happened
after the server applied it (read timeout, dropped connection, 5xx, garbled answer): the caller
gets a `TransientError` and decides (look the record up by key, say).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from erphub.connectors import jsonwire
from erphub.connectors.auth import AUTH_GENERATION, AuthStrategy
from erphub.connectors.base import SystemContext
from erphub.connectors.ratelimit import RateLimiter, shared_limiter
from erphub.core.errors import (
    AuthError,
    ConnectorError,
    PermanentError,
    ProtocolError,
    RateLimitedError,
    RetryableAnswer,
    TransientError,
)
from erphub.monitoring import metrics

log = structlog.get_logger("erphub.http")


class _NoQueryInHttpxLogs(logging.Filter):
    """httpx logs every request's full URL at INFO; some vendors put tokens in the query string
    (Yonyou's access_token), so strip the query from those log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None) if isinstance(arg, httpx.URL) and arg.query else arg for arg in record.args
            )
        return True


if not any(isinstance(f, _NoQueryInHttpxLogs) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_NoQueryInHttpxLogs())


class Action(StrEnum):
    OK = "ok"
    RETRY = "retry"
    FAIL = "fail"
    RATE_LIMITED = "rate_limited"
    REAUTH = "reauth"


# Status -> action. Exact codes win over the class ("4xx"). Review this table, not a chain of ifs.
DEFAULT_STATUS_ACTIONS: Mapping[int | str, Action] = {
    "2xx": Action.OK,
    "3xx": Action.FAIL,  # we never follow redirects to another host with credentials
    "4xx": Action.FAIL,
    "5xx": Action.RETRY,
    401: Action.REAUTH,  # becomes AuthError when the strategy cannot renew
    408: Action.RETRY,  # request timeout
    425: Action.RETRY,  # too early
    429: Action.RATE_LIMITED,
    501: Action.FAIL,  # not implemented: retrying will not help
    505: Action.FAIL,
}


def action_for_status(status: int, table: Mapping[int | str, Action]) -> Action:
    if status in table:
        return table[status]
    return table.get(f"{status // 100}xx", Action.FAIL)


@dataclass(frozen=True)
class Verdict:
    """A body classifier's judgement of one answer."""

    action: Action
    reason: str = ""  # short label for metrics/logs ("session_expired", "MsgCode 14")
    message: str = ""  # the vendor's own message (redacted before use)
    retry_after: float | None = None


BodyClassifier = Callable[[httpx.Response, Any], "Verdict | None"]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class HttpResult:
    response: httpx.Response
    body: Any
    attempts: int


def redact(text: str, secrets: list[str]) -> str:
    """Replace every secret value (longest first) by ***."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # HTTP-date form

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def default_message(body: Any) -> str:
    """A short vendor message from common error envelopes ({code, msg}, {message}, [{...}])."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict):
        return ""
    code = body.get("code", body.get("errorCode", body.get("error_code", body.get("errcode"))))
    msg = body.get("msg", body.get("message", body.get("error_description", body.get("error", body.get("errmsg")))))
    parts = [str(p) for p in (code, msg) if p not in (None, "")]
    return " ".join(parts)[:300]


ENDPOINT_EXTENSION = "erphub_endpoint"


class _MeteredClient(httpx.Client):
    """httpx.Client that throttles and meters every request it sends, logins included.

    Throttling here (not around the attempt) means a login call takes its own token, so the
    rate measured at the server counts logins too.
    """

    erphub_system = ""
    erphub_limiter: RateLimiter | None = None

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if self.erphub_limiter is not None:
            self.erphub_limiter.wait_turn(request.extensions.get(ENDPOINT_EXTENSION))
        started = time.perf_counter()
        try:
            response = super().send(request, **kwargs)
        except httpx.HTTPError:
            metrics.observe_http(self.erphub_system, None, time.perf_counter() - started)
            raise
        metrics.observe_http(self.erphub_system, response.status_code, time.perf_counter() - started)
        return response


@functools.lru_cache(maxsize=256)
def _path_of(url: str) -> str:
    """A request's path for messages: never its query string (some vendors put tokens there)."""
    return httpx.URL(url).path


# Transport failures: (metrics reason, may the server have applied the request?)
def _transport_failure(exc: httpx.TransportError) -> tuple[str, bool]:
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return "connect", False
    if isinstance(exc, httpx.PoolTimeout):
        return "timeout", False
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", True
    return "dropped", True


class HttpClient:
    """One configured system's HTTP access. Thread-safe (httpx.Client and the limiter are)."""

    def __init__(
        self,
        context: SystemContext,
        *,
        base_url: str,
        auth: AuthStrategy | None = None,
        default_rate_per_second: float | None = None,
        endpoint_rates: Mapping[str, float] | None = None,
        default_concurrency: int | None = None,
        status_actions: Mapping[int | str, Action] | None = None,
        classify_body: BodyClassifier | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
        retry_after_floor_s: float = 0.25,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.context = context
        self.system = context.name
        self.auth = auth or AuthStrategy()
        self.status_actions = {**DEFAULT_STATUS_ACTIONS, **(status_actions or {})}
        self.classify_body = classify_body
        self.retry_after_floor_s = retry_after_floor_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        # The configured rate replaces the vendor's documented global default; the vendor's
        # per-endpoint limits always apply on top.
        rate = context.rate_limit_per_second or default_rate_per_second
        concurrency = context.max_concurrency or default_concurrency
        self.limiter = limiter or shared_limiter(
            self.system,
            rate,
            burst=context.burst or 1,
            endpoint_rates={**(endpoint_rates or {}), **context.endpoint_rates},
            max_concurrency=concurrency,
            shared_url=context.shared_limit_url,
        )
        timeout = httpx.Timeout(
            connect=context.connect_timeout_s,
            read=context.read_timeout_s,
            write=context.read_timeout_s,
            pool=context.read_timeout_s,
        )
        pool = max(10, concurrency or 0)
        client_kwargs: dict[str, Any] = {
            "base_url": base_url,
            "timeout": timeout,
            "headers": {"User-Agent": "erphub/0.1", **(headers or {})},
            "follow_redirects": False,
            "limits": httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        }
        if context.transport is not None:
            client_kwargs["transport"] = context.transport
        self.client = _MeteredClient(**client_kwargs)
        self.client.erphub_system = self.system
        self.client.erphub_limiter = self.limiter

    # ---- public API --------------------------------------------------------------------
    def secrets(self) -> list[str]:
        return [*self.context.secrets, *self.auth.secret_values()]

    def post_json(self, path: str, payload: Any, *, endpoint: str | None = None, idempotent: bool = True) -> Any:
        return self.request("POST", path, json=payload, endpoint=endpoint, idempotent=idempotent).body

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str | None = None,
        idempotent: bool = True,
        return_statuses: Collection[int] = (),
    ) -> HttpResult:
        """Send with auth, throttling and retries; return the parsed answer or raise.

        `return_statuses` are handed back as results instead of raising (after the body
        classifier had its say), for per-record refusals a connector reports itself.
        """
        where = f"{method} {_path_of(path)}"
        if json is not None and content is None:  # encoded here, once, not by httpx on each attempt
            content = jsonwire.dumps(json)
            json = None
            # As httpx's json= does: the request's or the client's own Content-Type wins.
            if "content-type" not in self.client.headers and not any(
                    name.lower() == "content-type" for name in headers or {}):
                headers = {**(headers or {}), "Content-Type": "application/json"}
        reauths = [0]
        attempts = [0]

        def attempt() -> HttpResult:
            attempts[0] += 1
            with self.limiter.concurrency():
                return self._attempt(
                    method,
                    path,
                    endpoint,
                    where,
                    json,
                    params,
                    data,
                    content,
                    headers,
                    idempotent,
                    reauths,
                    attempts[0],
                    return_statuses,
                )

        retrying = Retrying(
            retry=retry_if_exception_type(RetryableAnswer),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep,
            before_sleep=lambda rs: self._before_sleep(rs, where),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except RetryableAnswer as exc:
            raise exc.error from None

    def close(self) -> None:
        self.client.close()

    # ---- one attempt -------------------------------------------------------------------
    def _attempt(
        self,
        method: str,
        path: str,
        endpoint: str | None,
        where: str,
        json_body: Any,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        content: bytes | str | None,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        reauths: list[int],
        number: int,
        return_statuses: Collection[int] = (),
    ) -> HttpResult:
        try:
            self.auth.ensure(self.client)
            request = self.client.build_request(
                method, path, json=json_body, params=params, data=data, content=content, headers=headers
            )
            request.extensions[ENDPOINT_EXTENSION] = endpoint
            self.auth.apply(request)
            response = self.client.send(request)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
                raise PermanentError(self._msg(f"{where}: bad URL"), system=self.system) from None
            reason, maybe_applied = _transport_failure(exc)
            told = f"{reason} to {self._host_port(exc)}"  # which host and port: the first thing on-call checks
            error = TransientError(self._msg(f"{where}: {told} ({type(exc).__name__})"), system=self.system)
            if maybe_applied and not idempotent:
                raise TransientError(
                    self._msg(f"{where}: {told} ({type(exc).__name__}); the request may have been applied"),
                    system=self.system,
                ) from None
            raise RetryableAnswer(error, reason) from None
        except AuthError as exc:
            metrics.count_auth_failure(self.system)
            raise AuthError(self._msg(f"{where}: login failed: {exc}"), system=self.system, status=exc.status) from None
        except TransientError as exc:  # login answered 5xx/429
            login_error = TransientError(self._msg(f"{where}: login: {exc}"), system=self.system)
            raise RetryableAnswer(login_error, "login") from None
        except ConnectorError as exc:
            raise type(exc)(self._msg(f"{where}: login: {exc}"), system=self.system, status=exc.status) from None

        body, malformed = self._parse(response)
        verdict = self._classify(response, body, malformed)
        status = response.status_code
        generation = request.extensions.get(AUTH_GENERATION)
        if verdict.action is Action.OK or (verdict.action is Action.FAIL and status in return_statuses):
            if verdict.action is Action.OK:
                self.auth.confirm(generation)
            return HttpResult(response, body, number)
        vendor = redact(verdict.message or default_message(body), self.secrets())
        detail = f"{where}: HTTP {status}" + (f" {vendor}" if vendor else "")
        if verdict.action is Action.REAUTH:
            # Writes of several batches share one login. Refused credentials another thread has
            # replaced since: try the new ones. Refused ones that were accepted before: they expired,
            # log in again. Only a login refused without ever being accepted, after this request's
            # one re-login, is a rejection. (Retries stay bounded by max_attempts.)
            renewed = self.auth.can_renew and self.auth.superseded(generation)
            expired = self.auth.can_renew and self.auth.proven(generation)
            if not renewed and (not self.auth.can_renew or (reauths[0] >= 1 and not expired)):
                metrics.count_auth_failure(self.system)
                raise AuthError(self._msg(f"{detail} (credentials rejected)"), system=self.system, status=status)
            if not renewed:
                reauths[0] += 1
                self.auth.invalidate(generation)
            raise RetryableAnswer(
                TransientError(self._msg(detail), system=self.system, status=status),
                "session_expired",
                immediate=True,
            )
        if verdict.action is Action.RATE_LIMITED:
            metrics.count_rate_limited(self.system)
            retry_after = verdict.retry_after
            if retry_after is None:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            error = RateLimitedError(self._msg(detail), system=self.system, status=status, retry_after=retry_after)
            raise RetryableAnswer(error, "rate_limited", retry_after=retry_after)
        if verdict.action is Action.RETRY:
            reason = "malformed" if malformed else ("5xx" if status >= 500 else (verdict.reason or "retry"))
            if not idempotent:
                raise TransientError(
                    self._msg(f"{detail}; the request may have been applied"),
                    system=self.system,
                    status=status,
                )
            error_cls = ProtocolError if malformed else TransientError
            raise RetryableAnswer(error_cls(self._msg(detail), system=self.system, status=status), reason)
        if status in (401, 403):
            metrics.count_auth_failure(self.system)
            raise AuthError(self._msg(detail), system=self.system, status=status)
        raise PermanentError(self._msg(detail), system=self.system, status=status)

    def _parse(self, response: httpx.Response) -> tuple[Any, bool]:
        """(body, malformed). Empty bodies parse to None; a 2xx that is not JSON is malformed."""
        raw = response.content
        if not raw.strip():
            return None, False
        try:
            return jsonwire.loads(raw), False
        except ValueError:
            ctype = response.headers.get("content-type", "")
            looks_json = "json" in ctype or raw.lstrip()[:1] in (b"{", b"[")
            return raw.decode("utf-8", "replace")[:300], looks_json and response.is_success

    def _classify(self, response: httpx.Response, body: Any, malformed: bool) -> Verdict:
        if malformed:
            return Verdict(Action.RETRY, "malformed", "answer is not valid JSON")
        if self.classify_body is not None:
            verdict = self.classify_body(response, body)
            if verdict is not None:
                return verdict
        if self.auth.is_expired_response(response, body):
            return Verdict(Action.REAUTH, "session_expired")
        return Verdict(action_for_status(response.status_code, self.status_actions))

    def _host_port(self, exc: httpx.TransportError) -> str:
        try:
            url = exc.request.url
        except RuntimeError:  # an error raised before the request was attached
            url = self.client.base_url
        port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
        return f"{url.host}:{port}"

    def _msg(self, text: str) -> str:
        return redact(text, self.secrets())

    # ---- tenacity hooks ----------------------------------------------------------------
    def _retry_of(self, state: RetryCallState) -> RetryableAnswer | None:
        exc = state.outcome.exception() if state.outcome is not None else None
        return exc if isinstance(exc, RetryableAnswer) else None

    def _wait(self, state: RetryCallState) -> float:
        failure = self._retry_of(state)
        if failure is not None and failure.immediate:
            return 0.0
        if failure is not None and failure.retry_after is not None:
            return max(self.retry_after_floor_s, failure.retry_after)
        base = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (state.attempt_number - 1))
        wait = base / 2 + self._rng.uniform(0, base / 2)  # "equal jitter": never below half the backoff
        if failure is not None and failure.reason == "rate_limited":
            wait = max(wait, self.retry_after_floor_s)
        return wait

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.context.max_attempts:
            return True
        return state.idle_for + state.upcoming_sleep > self.context.max_retry_seconds

    def _before_sleep(self, state: RetryCallState, where: str) -> None:
        failure = self._retry_of(state)
        reason = failure.reason if failure is not None else "retry"
        metrics.count_retry(self.system, reason)
        log.warning(
            "http.retry",
            system=self.system,
            request=where,
            reason=reason,
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
        )
