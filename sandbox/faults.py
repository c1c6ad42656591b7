"""Fault injection for sandboxes, controlled from Python (tests) or over HTTP (out of process).

A `Faults` object holds one `FaultPlan` per endpoint pattern. `FaultMiddleware` wraps a sandbox's
ASGI app, records every request in a `RequestLog` and applies the plan: latency, error rate,
bursts of 429 (with `Retry-After`) and 5xx, timeouts (sleep past the client's read timeout),
dropped connections, malformed JSON, and "lose the response" (the write is applied, then the
connection is dropped, so the client cannot know it landed). Session expiry and per-record
validation failures depend on the vendor's semantics, so the sandbox asks `Faults` for them
(`take_session_expiry`, `record_failure`) where it checks sessions and validates records.

Endpoint patterns: `"*"` matches every path; otherwise a pattern matches a path equal to it or
ending with `/<pattern>` (so `"data/list"` matches `/api/v5/app/entry/data/list`).

Out of process: `POST /__sandbox__/faults` with `{"endpoint": "data/list", "burst_429": 3}` (any
`FaultPlan` field), `{"clear": true}` to reset; `GET /__sandbox__/faults` shows the plans;
`GET /__sandbox__/requests` returns the request log, `DELETE /__sandbox__/requests` clears it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import httpx

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Builds the vendor's own error body for an injected error status (status, reason) -> JSON object.
ErrorBody = Callable[[int, str], Any]

CONTROL_PREFIX = "/__sandbox__"


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised inside the app to make the server close the connection without a complete answer.

    Under uvicorn the connection is closed after the headers (the client sees an incomplete
    response); through an in-process ASGI transport the client sees this transport error itself.
    """

    def __init__(self, message: str = "sandbox dropped the connection") -> None:
        super().__init__(message)


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for every connection we drop on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


def install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


@dataclass
class FaultPlan:
    """What to do to requests of one endpoint. Counts are consumed one request at a time."""

    error_rate: float = 0.0  # probability of answering `error_status`
    error_status: int = 503
    latency_s: float = 0.0  # added to every matching request
    burst_429: int = 0  # next N requests answer 429
    retry_after: float | None = 1.0  # Retry-After header of injected 429s (None: no header)
    burst_5xx: int = 0  # next N requests answer `status_5xx`
    status_5xx: int = 503
    timeouts: int = 0  # next N requests sleep `timeout_s` before answering 504
    timeout_s: float = 5.0
    drops: int = 0  # next N requests: connection closed, request NOT applied
    malformed: int = 0  # next N answers: status 200 with a truncated JSON body
    lose_response: int = 0  # next N requests: applied, then connection dropped
    expire_session: int = 0  # next N session checks fail as "session expired"
    fail_keys: dict[str, str] = field(default_factory=dict)  # record key -> validation message
    fail_rate: float = 0.0  # probability that any one record fails validation

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_PLAN_FIELDS = {f.name for f in fields(FaultPlan)}


def matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        return True
    pattern = pattern.strip()
    if pattern.startswith("/"):
        return path == pattern or path.endswith(pattern)
    return path == "/" + pattern or path.endswith("/" + pattern)


@dataclass(frozen=True)
class Decision:
    """What the middleware does with one request."""

    latency_s: float = 0.0
    status: int | None = None  # answer this status instead of calling the app
    retry_after: float | None = None
    timeout_s: float | None = None  # sleep this long, then answer 504
    drop: bool = False
    lose_response: bool = False
    malformed: bool = False


class Faults:
    """Thread-safe fault plan: tests change it while the server thread reads it."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, FaultPlan] = {}
        self._rng = random.Random(seed)

    # ---- building the plan -------------------------------------------------------------
    def plan(self, endpoint: str = "*") -> FaultPlan:
        with self._lock:
            return self._plans.setdefault(endpoint, FaultPlan())

    def set(self, endpoint: str = "*", **changes: Any) -> FaultPlan:
        unknown = set(changes) - _PLAN_FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}; valid: {sorted(_PLAN_FIELDS)}")
        with self._lock:
            plan = self._plans.setdefault(endpoint, FaultPlan())
            for name, value in changes.items():
                if name == "fail_keys":
                    plan.fail_keys.update({str(k): str(v) for k, v in dict(value).items()})
                else:
                    setattr(plan, name, value)
            return plan

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: v.to_json() for k, v in self._plans.items()}

    # Convenience verbs used by tests and harnesses.
    def latency(self, endpoint: str, seconds: float) -> None:
        self.set(endpoint, latency_s=seconds)

    def error_rate(self, endpoint: str, rate: float, status: int = 503) -> None:
        self.set(endpoint, error_rate=rate, error_status=status)

    def burst_429(self, endpoint: str, n: int, retry_after: float | None = 1.0) -> None:
        self.set(endpoint, burst_429=n, retry_after=retry_after)

    def burst_5xx(self, endpoint: str, n: int, status: int = 503) -> None:
        self.set(endpoint, burst_5xx=n, status_5xx=status)

    def timeouts(self, endpoint: str, n: int, seconds: float = 5.0) -> None:
        self.set(endpoint, timeouts=n, timeout_s=seconds)

    def drop(self, endpoint: str, n: int = 1) -> None:
        self.set(endpoint, drops=n)

    def malformed(self, endpoint: str, n: int = 1) -> None:
        self.set(endpoint, malformed=n)

    def lose_next_response(self, endpoint: str = "*", n: int = 1) -> None:
        self.set(endpoint, lose_response=n)

    def expire_session(self, n: int = 1, endpoint: str = "*") -> None:
        self.set(endpoint, expire_session=n)

    def fail_records(self, endpoint: str, keys: dict[str, str] | list[str], message: str = "validation failed") -> None:
        mapping = keys if isinstance(keys, dict) else {k: message for k in keys}
        self.set(endpoint, fail_keys=mapping)

    def apply_json(self, payload: dict[str, Any]) -> None:
        """The body of `POST /__sandbox__/faults`."""
        if payload.get("clear"):
            self.clear()
        changes = {k: v for k, v in payload.items() if k not in ("endpoint", "clear")}
        if changes:
            self.set(str(payload.get("endpoint", "*")), **changes)

    # ---- consulted while serving -------------------------------------------------------
    def _matching(self, path: str) -> list[FaultPlan]:
        # Specific patterns first, the catch-all last.
        specific = [p for k, p in self._plans.items() if k != "*" and matches(k, path)]
        star = self._plans.get("*")
        return specific + ([star] if star else [])

    def _take(self, plans: list[FaultPlan], name: str) -> FaultPlan | None:
        for plan in plans:
            if getattr(plan, name) > 0:
                setattr(plan, name, getattr(plan, name) - 1)
                return plan
        return None

    def decide(self, path: str) -> Decision:
        with self._lock:
            plans = self._matching(path)
            if not plans:
                return Decision()
            latency = max(p.latency_s for p in plans)
            if (p := self._take(plans, "drops")) is not None:
                return Decision(latency_s=latency, drop=True)
            if (p := self._take(plans, "timeouts")) is not None:
                return Decision(latency_s=latency, timeout_s=p.timeout_s)
            if (p := self._take(plans, "burst_429")) is not None:
                return Decision(latency_s=latency, status=429, retry_after=p.retry_after)
            if (p := self._take(plans, "burst_5xx")) is not None:
                return Decision(latency_s=latency, status=p.status_5xx)
            for p in plans:
                if p.error_rate > 0 and self._rng.random() < p.error_rate:
                    return Decision(latency_s=latency, status=p.error_status)
            lose = self._take(plans, "lose_response") is not None
            malformed = not lose and self._take(plans, "malformed") is not None
            return Decision(latency_s=latency, lose_response=lose, malformed=malformed)

    def take_session_expiry(self, path: str) -> bool:
        """True when the sandbox should treat this request's session/token as expired."""
        with self._lock:
            return self._take(self._matching(path), "expire_session") is not None

    def record_failure(self, path: str, key: str | None) -> str | None:
        """The validation message to refuse this record with, or None to accept it."""
        with self._lock:
            for plan in self._matching(path):
                if key is not None and key in plan.fail_keys:
                    return plan.fail_keys[key]
                if plan.fail_rate > 0 and self._rng.random() < plan.fail_rate:
                    return "injected validation failure"
        return None


@dataclass
class LoggedRequest:
    at: float  # time.monotonic() on arrival
    path: str
    status: int | None  # None: no answer (dropped, lost) or not answered yet


class RequestLog:
    """Every request a sandbox received, for server-side rate and retry measurements."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def add(self, at: float, path: str, status: int | None = None) -> LoggedRequest:
        """Record a request on arrival; the caller sets `status` once it answers."""
        entry = LoggedRequest(at, path, status)
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self, endpoint: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            items = [LoggedRequest(e.at, e.path, e.status) for e in self._entries]
        if endpoint is None:
            return items
        return [e for e in items if matches(endpoint, e.path)]

    def times(self, endpoint: str | None = None) -> list[float]:
        return [e.at for e in self.entries(endpoint)]

    def count(self, endpoint: str | None = None) -> int:
        return len(self.entries(endpoint))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def max_in_window(self, window_s: float = 1.0, endpoint: str | None = None) -> int:
        return max_in_window(self.times(endpoint), window_s)


def max_in_window(times: list[float], window_s: float = 1.0) -> int:
    """Most requests seen in any half-open window [t, t + window_s)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def send_json(send: Send, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    raw_headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def drop_connection(send: Send) -> None:
    """Start an answer and break it off, so the client gets no usable response."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    raise DroppedConnection()


def default_error_body(status: int, reason: str) -> Any:
    return {"error": reason, "status": status}


class FaultMiddleware:
    """Wraps a sandbox app: logs requests, serves the control endpoints, applies the fault plan."""

    def __init__(self, app: ASGIApp, faults: Faults, log: RequestLog, error_body: ErrorBody | None = None) -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.error_body = error_body or default_error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            if not await self._control(scope, receive, send):
                await self.app(scope, receive, send)
            return
        # Logged on arrival, so a test reading the log right after its last answer sees it.
        entry = self.log.add(time.monotonic(), path)
        await self._serve(scope, receive, send, entry)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, entry: LoggedRequest) -> None:
        path: str = scope["path"]
        decision = self.faults.decide(path)
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if decision.drop:
            await drop_connection(send)
        if decision.timeout_s is not None:
            await asyncio.sleep(decision.timeout_s)
            entry.status = 504
            await send_json(send, 504, self.error_body(504, "gateway timeout"))
            return
        if decision.status is not None:
            entry.status = decision.status
            headers = {}
            if decision.status == 429 and decision.retry_after is not None:
                headers["Retry-After"] = _fmt_seconds(decision.retry_after)
            reason = "too many requests" if decision.status == 429 else "injected server error"
            await send_json(send, decision.status, self.error_body(decision.status, reason), headers)
            return
        if not (decision.lose_response or decision.malformed):

            async def logged_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    entry.status = message["status"]
                await send(message)

            await self.app(scope, receive, logged_send)
            return
        # Run the app to the end (the write is applied), then withhold or mangle its answer.
        buffered: list[Message] = []

        async def buffer(message: Message) -> None:
            buffered.append(message)

        await self.app(scope, receive, buffer)
        if decision.lose_response:
            await drop_connection(send)
        body = b"".join(m.get("body", b"") for m in buffered if m["type"] == "http.response.body")
        broken = body[: max(1, len(body) // 2)] if body else b'{"data": ['
        entry.status = 200
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(broken)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": broken})

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> bool:
        path: str = scope["path"][len(CONTROL_PREFIX) :]
        method: str = scope["method"]
        if path == "/faults":
            if method == "POST":
                raw = await _read_body(receive)
                try:
                    payload = json.loads(raw or b"{}")
                    self.faults.apply_json(payload)
                except (ValueError, TypeError) as exc:
                    await send_json(send, 400, {"error": str(exc)})
                    return True
            await send_json(send, 200, {"faults": self.faults.snapshot()})
            return True
        if path == "/requests":
            if method == "DELETE":
                self.log.clear()
            entries = [[e.at, e.path, e.status] for e in self.log.entries()]
            await send_json(send, 200, {"requests": entries})
            return True
        return False


def _fmt_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
