"""Token bucket and per-system limiter, on a fake clock (no real sleeping)."""

from __future__ import annotations

import itertools
import threading
import time

from erphub.connectors.ratelimit import HEADROOM, RateLimiter, TokenBucket, shared_limiter
from erphub.sandbox.faults import max_in_window


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def send_times(limiter: RateLimiter, clock: FakeClock, n: int, endpoint: str | None = None) -> list[float]:
    times = []
    for _ in range(n):
        limiter.wait_turn(endpoint)
        times.append(clock.now)
    return times


def test_bucket_spaces_requests_below_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=1, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(50):
        bucket.acquire()
        times.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 10 / HEADROOM - 1e-9
    assert max_in_window(times, 1.0) <= 10


def test_burst_allows_an_initial_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, burst=5, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(7)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5] > 0


def test_idle_time_refills_but_never_beyond_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, burst=2, clock=clock, sleep=clock.sleep)
    bucket.acquire(), bucket.acquire()
    clock.now += 100
    assert [bucket.acquire() for _ in range(3)][:2] == [0, 0]


def test_endpoint_and_global_buckets_both_hold() -> None:
    clock = FakeClock()
    limiter = RateLimiter(8, endpoint_rates={"data/batch_create": 2}, clock=clock, sleep=clock.sleep)
    writes = send_times(limiter, clock, 10, "data/batch_create")
    assert max_in_window(writes, 1.0) <= 2
    start = clock.now
    reads = send_times(limiter, clock, 40, "data/list")
    assert max_in_window(reads, 1.0) <= 8
    assert clock.now - start >= 39 / 8


def test_concurrency_cap_is_never_exceeded() -> None:
    limiter = RateLimiter(None, max_concurrency=3)
    active = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal active, peak
        with limiter.slot():
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.01)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3


def test_bucket_is_thread_safe() -> None:
    clock = FakeClock()
    bucket = TokenBucket(20, burst=1, clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            w = bucket.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 100 reservations at one instant: each later one waits one interval more, none shares a slot
    assert sorted(round(w * 20 * HEADROOM) for w in waits) == list(range(100))


def test_shared_limiter_is_one_per_system_and_settings() -> None:
    a = shared_limiter("unit-rl-sys", 5.0)
    assert shared_limiter("unit-rl-sys", 5.0) is a
    assert shared_limiter("unit-rl-other", 5.0) is not a


def test_window_bucket_lets_a_slow_caller_catch_up_within_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    times = []
    for n in range(100):
        limiter.wait_turn()
        times.append(clock.now)
        clock.now += 0.15 if n % 10 == 0 else 0.09  # one slow call in ten, the others just under 0.1 s
    assert max_in_window(times, 1.0) <= 10
    assert max_in_window(times, 1.0 / HEADROOM - 1e-6) <= 10
    # A burst-1 token bucket loses every slow call's extra time; the window keeps ~95 % of 10/s.
    assert len(times) / (times[-1] - times[0]) >= 10 * HEADROOM * 0.97


def test_token_bucket_of_burst_1_does_not_catch_up() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=1, clock=clock, sleep=clock.sleep)
    times = []
    for n in range(100):
        bucket.acquire()
        times.append(clock.now)
        clock.now += 0.15 if n % 10 == 0 else 0.09
    assert len(times) / (times[-1] - times[0]) < 10 * HEADROOM * 0.97
