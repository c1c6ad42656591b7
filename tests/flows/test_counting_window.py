"""flows/sync.py's CountingWindow: it holds only the batches not committed yet (a chunk task's memory is
a few batches, not its chunk), and after a failure exactly those, in order, for the retry's counts."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from erphub.engine.items import BatchWork
from erphub.store import BatchCommit


class FakeRun:
    """What a BatchWindow asks of a PipelineRun: writes take a moment; `fail_at` fails that batch."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.pipeline = SimpleNamespace(two_way=None, write_back=None, write_concurrency=4)
        self.fail_at, self.committed = fail_at, list[int]()

    def work(self, work: BatchWork) -> BatchWork:
        time.sleep(0.002)
        if work.counts["n"] == self.fail_at:
            raise RuntimeError("the target went away")
        return work

    def commit(self, work: BatchWork) -> None:
        self.committed.append(work.counts["n"])


def batch(n: int) -> BatchWork:
    return BatchWork(BatchCommit("p", "run"), touched=frozenset({f"id:{n}"}), counts=Counter(n=n))


def test_committed_batches_are_let_go() -> None:
    from erphub.flows.sync import CountingWindow

    run: Any = FakeRun()
    most_held = 0
    with CountingWindow(run) as window:
        for n in range(1, 61):
            window.submit(batch(n))
            most_held = max(most_held, len(window.uncommitted))
    assert run.committed == list(range(1, 61))
    assert window.committed == 60 and not window.uncommitted
    assert most_held <= 4  # the batches in flight, never the chunk


def test_after_a_failure_it_holds_exactly_the_batches_not_committed() -> None:
    from erphub.flows.sync import CountingWindow

    run: Any = FakeRun(fail_at=25)
    window = CountingWindow(run)
    with pytest.raises(RuntimeError), window:
        for n in range(1, 61):
            window.submit(batch(n))
    assert run.committed == list(range(1, 25))
    assert window.committed == 24
    held = [work.counts["n"] for work in window.uncommitted]
    assert held[0] == 25 and held == list(range(25, 25 + len(held)))
