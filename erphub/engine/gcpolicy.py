"""The cyclic garbage collector, tuned while runs are going.

A run allocates a few dozen containers per record (the page's parsed JSON, the mapped payload, the
request body) and frees nearly all of them by reference counting: records hold no cycles. Python's
default collector still walks the young objects every 700 allocations, and every tenth and hundredth
pass the older ones too. Measured on the no-latency bench (`python bench/sync_bench.py --only hand`,
20,000 records): 850 young, 77 middle and 7 full passes took 0.27 s of a 4.3 s process.

While at least one run is going, the young threshold is RUN_THRESHOLD: the same garbage is found, in
fewer and larger passes. The last run to end restores it. Runs in threads of one process (`erphub
serve`) share the one collector, hence the count.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Container allocations between young passes while a run goes (CPython's default is 700). Cyclic
# garbage waits for up to this many allocations before it is found: it counts objects, not bytes,
# so a cycle holding a large buffer stays that much longer.
RUN_THRESHOLD = 10_000

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def run_collection() -> Iterator[None]:
    """Fewer collector passes for as long as this (and any other) run goes."""
    _enter()
    try:
        yield
    finally:
        _exit()


def _enter() -> None:
    global _runs, _saved
    with _lock:
        _runs += 1
        if _runs == 1:
            _saved = gc.get_threshold()
            gc.set_threshold(max(RUN_THRESHOLD, _saved[0]), _saved[1], _saved[2])


def _exit() -> None:
    global _runs, _saved
    with _lock:
        _runs -= 1
        if _runs == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None
