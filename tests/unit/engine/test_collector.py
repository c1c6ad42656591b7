"""The run's garbage-collector setting: set while any run works, restored when the last one ends."""

from __future__ import annotations

import gc
import threading
import weakref

from erphub.engine.collector import fewer_collections


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_the_setting_holds_while_any_run_works_and_is_restored_after_the_last() -> None:
    before = gc.get_threshold()
    first_in, second_done = threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def other_run() -> None:
        with fewer_collections():
            first_in.wait()
        second_done.set()

    thread = threading.Thread(target=other_run)
    with fewer_collections():
        thread.start()
        first_in.set()
        second_done.wait(5)
        seen.append(gc.get_threshold())  # the other run ended first: still ours
        assert gc.get_freeze_count() > 0
    thread.join()
    assert seen[0][0] >= 50_000
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_made_during_a_run_are_still_collected() -> None:
    with fewer_collections():
        node = _Node()
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None


def test_a_heap_frozen_before_the_run_stays_frozen_after_it() -> None:
    """The one-shot CLI freezes its start-up heap for the whole process (settle_heap): a run must not
    unfreeze it."""
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        with fewer_collections():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
