"""Client-side throttling so the hub never degrades the systems it talks to.

`WindowBucket` (a sliding window, the default) and `TokenBucket` (when a `burst` is configured)
pace requests; `RateLimiter` combines one global bucket per system, optional
per-endpoint buckets (vendors often document a limit per interface) and a concurrency cap.
All are thread-safe: Prefect may run several tasks of one system in threads at once.

Measured at the server, a bucket of rate r and burst b admits at most b + r*w requests in any window
of w seconds. With the default burst of 1 that is r per second plus the boundary request, so buckets
run at `HEADROOM` (5%) under the configured rate: r+1 requests then span about 1.05 s (a
`WindowBucket`: r in any 1.05 s), and the arrival jitter seen on a loaded 2-core machine (tens of
milliseconds per request) cannot squeeze them into one of the server's 1-second windows. 2% was
measured to be too thin: a CI run saw 5 arrivals in one second at a configured 4/s. 10% (0.11 s of
slack) kept every client below 90 % of its quota, so in process the buckets run 5% under it: r+1
requests span 1.053 s, 0.053 s of slack, 2.6 times what failed. The hub-wide bucket
(`shared_limit`), whose turns cross processes and a database, keeps 20% (SHARED_HEADROOM): r+1
requests span 1.25 s. 10% (0.11 s of slack) was measured to be too thin: with three workers, a
Prefect server and PostgreSQL on 2 cores, a CI run saw 5 arrivals in one second at a shared 4/s, one
request reaching the server over 0.11 s after its turn (the commit returning the turn, the thread
waking from its sleep and the send all sit between the turn and the arrival).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], None]

HEADROOM = 0.95
SHARED_HEADROOM = 0.8


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


class WindowBucket:
    """At most `n` requests in any window of `n / rate / headroom` seconds (n = the whole part of the
    rate, at least 1): the vendor's own rule ("r per second", counted over a sliding window) with the
    same slack as `TokenBucket`, but a client that fell behind (a slow response of a sequential
    reader) may catch up within the window instead of losing that time for good. A token bucket of
    burst 1 carries no such credit: a reader whose calls take about the bucket's interval ran at
    ~88 % of its quota (bench (a)). Same `reserve()`, so `RateLimiter` takes either.
    """

    def __init__(self, rate: float, *, clock: Clock = time.monotonic, headroom: float = HEADROOM) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.size = max(1, int(rate))
        self.window_s = max(1.0, self.size / rate) / headroom
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()  # the last `size` send times (reserved), oldest first

    def reserve(self) -> float:
        """Take the next free turn; return how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            at = now if len(self._sent) < self.size else max(now, self._sent[0] + self.window_s)
            self._sent.append(at)
            if len(self._sent) > self.size:
                self._sent.popleft()
            return at - now


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
            _bucket(rate_per_second, burst, clock, sleep) if rate_per_second else None
        )
        self._endpoints = {name: _bucket(rate, burst, clock, sleep) for name, rate in (endpoint_rates or {}).items()}
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


def _bucket(rate: float, burst: int, clock: Clock, sleep: Sleep) -> Bucket:
    """A sliding window by default; a configured `burst` above 1 asks for a token bucket's credit."""
    if burst > 1:
        return TokenBucket(rate, burst, clock=clock, sleep=sleep)
    return WindowBucket(rate, clock=clock)


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
