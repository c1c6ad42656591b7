"""What every sandbox shares: the SandboxApp bundle, serving, faults, request log, throttling.

A sandbox package exposes `create_sandbox(**options) -> SandboxApp`. Build it with
`SandboxApp.build(name, starlette_app, credentials=..., description=..., error_body=...)`,
which wraps the app in `FaultMiddleware` so the fault plan, the control endpoints under
`/__sandbox__/` and the request log come for free. In the app, call
`sandbox.faults.take_session_expiry(path)` where sessions are checked and
`sandbox.faults.record_failure(path, key)` where records are validated, and answer the vendor's
own throttle with a `WindowLimiter`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from erphub.sandbox.faults import (
    CONTROL_PREFIX,
    ASGIApp,
    DroppedConnection,
    ErrorBody,
    FaultMiddleware,
    FaultPlan,
    Faults,
    LoggedRequest,
    RequestLog,
    max_in_window,
)
from erphub.sandbox.serve import HOST, SandboxServer, run_foreground

__all__ = [
    "CONTROL_PREFIX",
    "HOST",
    "DroppedConnection",
    "FaultMiddleware",
    "FaultPlan",
    "Faults",
    "LoggedRequest",
    "RequestLog",
    "SandboxApp",
    "SandboxServer",
    "WindowLimiter",
    "max_in_window",
    "run_foreground",
]


@dataclass
class SandboxApp:
    """A sandbox ready to serve: its wrapped ASGI app, demo credentials, faults and request log.

    `state` is the sandbox's own in-memory store (tests reach into it to seed or inspect data).
    """

    name: str
    app: ASGIApp
    credentials: dict[str, str]
    description: str
    faults: Faults
    log: RequestLog
    state: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        name: str,
        app: ASGIApp,
        *,
        credentials: dict[str, str],
        description: str,
        error_body: ErrorBody | None = None,
        state: Any = None,
        faults: Faults | None = None,
        log: RequestLog | None = None,
    ) -> SandboxApp:
        faults = faults or Faults()
        log = log or RequestLog()
        wrapped = FaultMiddleware(app, faults, log, error_body)
        return cls(name, wrapped, credentials, description, faults, log, state)

    def serve(self, port: int = 0) -> SandboxServer:
        """A not-yet-started server for this sandbox (use it as a context manager)."""
        return SandboxServer(self.app, port=port)


class WindowLimiter:
    """The vendor's own throttle: at most `limit` accepted requests per key in any sliding window.

    `hit(key)` returns None when the request is accepted, else the seconds until a slot frees
    (for a Retry-After header). Refused requests do not take a slot.
    """

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.window_s = window_s
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str = "default", now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(0.0, hits[0] + self.window_s - now)
            hits.append(now)
            return None

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
