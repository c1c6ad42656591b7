"""What a chunk task holds (flows/sync.py): the batches not committed yet (CountingWindow) and the pages
of those batches (Chunk.let_go), not its whole chunk; after a failure exactly what a retry needs."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from erphub.core.records import Page, Record, utcnow
from erphub.engine.items import BatchWork
from erphub.store import BatchCommit


class FakeRun:
    """What a BatchWindow asks of a PipelineRun: writes take a moment; `fail_at` fails that batch."""

    def __init__(self, fail_at: int | None = None, concurrency: int = 4) -> None:
        self.pipeline = SimpleNamespace(two_way=None, write_back=None, write_concurrency=concurrency)
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


@pytest.mark.parametrize(("concurrency", "held"), [(4, [25, 26, 27, 28, 29]), (1, [25])])
def test_after_a_failure_it_holds_exactly_the_batches_not_committed(concurrency: int, held: list[int]) -> None:
    """With writes in threads: the failed batch, the three written beside it, and the one that was
    waiting for a slot; one batch at a time: the failed one alone."""
    from erphub.flows.sync import CountingWindow

    run: Any = FakeRun(fail_at=25, concurrency=concurrency)
    window = CountingWindow(run)
    with pytest.raises(RuntimeError), window:
        for n in range(1, 61):
            window.submit(batch(n))
    assert run.committed == list(range(1, 25))
    assert window.committed == 24
    assert [work.counts["n"] for work in window.uncommitted] == held


def pages(n: int, size: int = 8) -> list[Page]:
    at = utcnow()
    return [Page([Record(f"r{p}-{i}", at, {}) for i in range(size)], None) for p in range(n)]


def three_a_page(page: Page) -> int:
    return -(-len(page.records) // 3)  # batches of 3


def test_a_chunk_lets_go_of_the_pages_whose_batches_are_all_committed() -> None:
    from erphub.flows.sync import Chunk

    source = iter(pages(6))
    chunk = Chunk([next(source)], source=source, size=40)  # 5 pages of 8: 15 batches of 3
    seen = []
    for page in chunk.taken():
        seen.append(page.records[0].id)
        chunk.let_go(len(seen) * 3 - 4, three_a_page)  # all but the last four batches committed
        assert len(chunk.pages) <= 2
    assert seen == [f"r{p}-0" for p in range(5)]  # every page once, in order, while it let go of them
    assert (chunk.released.pages, chunk.released.batches, chunk.records) == (3, 9, 40)
    chunk.let_go(10, three_a_page)  # batch 10 of page 4 (batches 9-11) not committed: page 4 stays
    assert chunk.released.pages == 3
    retried = [page.records[0].id for page in chunk.taken()]
    assert retried == ["r3-0", "r4-0"]  # a retry starts at the first page still held
    chunk.let_go(15, three_a_page)
    assert not chunk.pages and chunk.records == 40 and list(chunk.taken()) == []
