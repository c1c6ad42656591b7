"""Read ahead: the next page is read in a thread while the current one is mapped and written.

At most `depth` pages wait in memory. The reader's error is raised in the consumer, at the page it
would have produced; a consumer that stops early (an error downstream) stops the reader too.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_POLL_S = 0.1


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


@contextmanager
def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[Iterator[T]]:
    """`with prefetched(pages) as pages:` iterates *items*, produced one step ahead in a thread."""
    waiting: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_End(exc))
            return
        put(_End())

    def consume() -> Iterator[T]:
        while True:
            item = waiting.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    reader = threading.Thread(target=contextvars.copy_context().run, args=(read,), name="erphub-read",
                              daemon=True)
    reader.start()
    try:
        yield consume()
    finally:
        stop.set()
        reader.join()
