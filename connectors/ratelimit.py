"""Client-side throttling so the hub never degrades the systems it talks to.

`TokenBucket` paces requests; `RateLimiter` combines one global bucket per system, optional
per-endpoint buckets (vendors often document a limit per interface) and a concurrency cap.
All are thread-safe: Prefect may run several tasks of one system in threads at once.

Measured at the server, a bucket of rate r and burst b admits at most b + r*w requests in any
window of w seconds. With the default burst of 1 that is r per second plus the boundary
request, so buckets run at `HEADROOM` (10%) under the configured rate: r+1 requests then span
about 1.1 s, and the arrival jitter seen on a loaded 2-core machine (tens of milliseconds per
request) cannot squeeze them into one of the server's 1-second windows. 2% was measured to be
too thin: a CI run saw 5 arrivals in one second at a configured 4/s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], None]

HEADROOM = 0.9


class Bucket(Protocol):
    """What `RateLimiter` needs of a bucket: a token now, and how long to wait before using it."""

    def reserve(self) -> float: ...


class TokenBucket:
    """`rate` tokens per second, at most `burst` stored. `acquire()` blocks until a token is ours.

    Tokens are reserved under the lock (the balance may go negative) and the wait happens
    outside it, so concurrent callers queue fairly without holding the lock while sleeping.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        headroom: float = HEADROOM,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.rate = rate
        self.burst = burst
        self._effective = rate * headroom
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._stamp = clock()

    def reserve(self) -> float:
        """Take a token now; return how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self._effective)
            self._stamp = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self._effective

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class RateLimiter:
    """A system's throttle: global bucket + per-endpoint buckets + concurrency cap.

    `with limiter.slot("data/list"):` waits for a concurrency slot, then for the endpoint's
    bucket and the global bucket, and holds the slot while the request runs.
    """

    def __init__(
        self,
        rate_per_second: float | None,
        *,
        burst: int = 1,
        endpoint_rates: Mapping[str, float] | None = None,
        max_concurrency: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        global_bucket: Bucket | None = None,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.max_concurrency = max_concurrency
        # `global_bucket`: the system's bucket held elsewhere (`shared_limit`: one for the whole hub).
        self._global: Bucket | None = global_bucket or (
            TokenBucket(rate_per_second, burst, clock=clock, sleep=sleep) if rate_per_second else None
        )
        self._endpoints = {
            name: TokenBucket(rate, burst, clock=clock, sleep=sleep)
            for name, rate in (endpoint_rates or {}).items()
        }
        self._slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self._sleep = sleep

    def wait_turn(self, endpoint: str | None = None) -> float:
        """Block until the endpoint's and then the system's bucket let one request through.

        The global token is reserved only after the endpoint wait, so the time it accounts for
        is the time the request really leaves.
        """
        waited = 0.0
        bucket = self._endpoints.get(endpoint) if endpoint else None
        for b in (bucket, self._global):
            if b is not None:
                wait = b.reserve()
                if wait > 0:
                    self._sleep(wait)
                    waited += wait
        return waited

    @contextmanager
    def concurrency(self) -> Iterator[None]:
        """Hold one of the system's concurrency slots."""
        if self._slots is not None:
            self._slots.acquire()
        try:
            yield
        finally:
            if self._slots is not None:
                self._slots.release()

    @contextmanager
    def slot(self, endpoint: str | None = None) -> Iterator[float]:
        """A concurrency slot plus this request's turn in the buckets."""
        with self.concurrency():
            yield self.wait_turn(endpoint)


_SHARED: dict[tuple[object, ...], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(
    system: str,
    rate_per_second: float | None,
    *,
    burst: int = 1,
    endpoint_rates: Mapping[str, float] | None = None,
    max_concurrency: int | None = None,
    shared_url: str | None = None,
) -> RateLimiter:
    """One limiter per configured system and process, so parallel tasks share one budget.

    With `shared_url` (a PostgreSQL URL) the system's bucket lives in that database and every process
    using it shares one budget (`shared_limit.PostgresTokenBucket`)."""
    key = (system, rate_per_second, burst, tuple(sorted((endpoint_rates or {}).items())), max_concurrency,
           shared_url)
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None:
            bucket: Bucket | None = None
            if shared_url and rate_per_second:
                from erphub.connectors.shared_limit import PostgresTokenBucket

                bucket = PostgresTokenBucket(shared_url, system, rate_per_second, burst)
            limiter = RateLimiter(
                rate_per_second, burst=burst, endpoint_rates=endpoint_rates, max_concurrency=max_concurrency,
                global_bucket=bucket,
            )
            _SHARED[key] = limiter
        return limiter
