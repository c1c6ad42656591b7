"""The cyclic garbage collector, tuned while runs are going.

A run allocates a few dozen containers per record (the page's parsed JSON, the mapped payload, the
request body) and frees nearly all of them by reference counting: records hold no cycles. Python's
default collector still walks the young objects every 700 allocations and, every so often, every
object in the process, modules and configuration included. Measured on the no-latency bench
(`python bench/sync_bench.py --only hand`, 20,000 records): 850 young, 77 middle and 7 full passes
took 0.27 s of a 4.3 s process.

While at least one run is going, the young threshold is raised (fewer, larger passes: the same
garbage is found, later) and the objects alive before the first run began are frozen out of the full
passes (`gc.freeze`): they are the process's long-lived state, not a run's garbage. The last run to
end restores both. Runs in threads of one process (`erphub serve`) share the one collector, hence
the count.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Young objects between passes while a run goes (CPython's default is 700). A pass then finds at
# most this many objects' worth of cyclic garbage: a few megabytes at worst.
RUN_THRESHOLD = 50_000

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
            gc.freeze()
            gc.set_threshold(max(RUN_THRESHOLD, _saved[0]), _saved[1], _saved[2])


def _exit() -> None:
    global _runs, _saved
    with _lock:
        _runs -= 1
        if _runs == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            gc.unfreeze()  # back into the oldest generation: collected as usual from now on
            _saved = None
