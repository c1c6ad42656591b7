"""Batches of one run written concurrently, committed in order.

    prepare (map, main thread) ─► work (look up, write: up to `write_concurrency` threads) ─► commit (in order)

Up to `Pipeline.write_concurrency` batches are in flight (the target system's `max_concurrency`;
every request of them still takes its turn from the system's one rate limiter, `connectors.ratelimit`).
Their writes may finish in any order, but batches are committed strictly in the order they were
read: the cursor only ever advances over a contiguous prefix of committed batches, so a crash
never skips a record. A batch that touches a source id or a match key (as the target tells keys
apart) of a batch still in flight waits until that batch is committed: the second one then sees
the first one's links, and one record is never written by two batches at once.

Two-way and write-back pipelines read and write the other side within a batch: they run one batch
at a time.
"""

from __future__ import annotations

import contextvars
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING

from erphub.engine.items import BatchWork

if TYPE_CHECKING:
    from erphub.engine.run import PipelineRun


def write_concurrency(run: PipelineRun) -> int:
    p = run.pipeline
    if p.two_way is not None or p.write_back is not None:
        return 1
    return max(1, p.write_concurrency)


class BatchWindow:
    """The batches of a run between their mapping and their commit (a context manager: flushes on exit)."""

    def __init__(self, run: PipelineRun) -> None:
        self.run = run
        self.limit = write_concurrency(run)
        self._pool = ThreadPoolExecutor(self.limit, thread_name_prefix="erphub-write") if self.limit > 1 else None
        self._in_flight: deque[tuple[Future[BatchWork], frozenset[str]]] = deque()

    def submit(self, work: BatchWork) -> None:
        """Start the batch's I/O once a slot is free and no batch in flight touches its records."""
        if self._pool is None:
            self.run.commit(self.run.work(work))
            return
        while self._in_flight and (len(self._in_flight) >= self.limit
                                   or any(not work.touched.isdisjoint(touched) for _, touched in self._in_flight)):
            self._commit_oldest()
        future = self._pool.submit(contextvars.copy_context().run, self.run.work, work)
        self._in_flight.append((future, work.touched))

    def flush(self) -> None:
        while self._in_flight:
            self._commit_oldest()

    def _commit_oldest(self) -> None:
        future, _ = self._in_flight.popleft()
        self.run.commit(future.result())  # a failed batch raises here: nothing after it is committed

    def __enter__(self) -> BatchWindow:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            # After a failure the batches still in flight finish their writes (a write is never cut
            # in half) but are not committed: the next run finds them by key, as after a crash.
            self._in_flight.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
