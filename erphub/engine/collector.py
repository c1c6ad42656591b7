"""Python's cyclic garbage collector during a run: fewer, cheaper collections.

A run allocates a few dicts per record and frees nearly all of them by reference counting; the
cyclic collector still runs a young collection every 700 allocations and, every 100 of those, a
full one over every object the process holds (imported modules, SQLAlchemy metadata, pydantic
models: hundreds of thousands). Measured on bench (c), 20,000 rows: 370 young and 3 full
collections, 0.2-0.3 s of 2 s of CPU. During a run, objects alive at its start are frozen out
of the collector's view (`gc.freeze`, docs.python.org/3/library/gc.html#gc.freeze: "moves all
objects tracked by the garbage collector into a permanent generation") and young collections come
every 50,000 allocations; cycles made during the run are still collected. Runs in threads of one
process (`erphub serve`) share the setting: the first to start sets it, the last to end restores it
(and unfreezes, unless the heap was frozen before the first run began: the one-shot CLI freezes its
start-up heap for the rest of the process, `erphub.cli.runner.settle_heap`).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_YOUNG_THRESHOLD = 50_000

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None
_unfreeze_after = False  # False when something froze the heap before the first run (the CLI's settle_heap)


@contextmanager
def fewer_collections() -> Iterator[None]:
    global _active, _saved, _unfreeze_after
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            _unfreeze_after = gc.get_freeze_count() == 0
            gc.freeze()
            gc.set_threshold(max(_saved[0], _YOUNG_THRESHOLD), _saved[1], _saved[2])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                if _unfreeze_after:
                    gc.unfreeze()
                _saved = None
