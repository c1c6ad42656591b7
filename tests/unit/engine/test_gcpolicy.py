"""The collector's tuning lasts exactly as long as runs are going, and garbage is still collected."""

from __future__ import annotations

import gc
import threading
import weakref

from erphub.engine import gcpolicy
from erphub.engine.gcpolicy import RUN_THRESHOLD, run_collection


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_a_run_raises_the_young_threshold_then_restores_it() -> None:
    before = gc.get_threshold()
    with run_collection():
        assert gc.get_threshold()[0] == max(RUN_THRESHOLD, before[0])
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before


def test_a_cycle_made_during_a_run_is_still_collected() -> None:
    with run_collection():
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
        gc.collect()
        assert alive() is None


def test_runs_in_threads_restore_only_when_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first_in, second_done, first_may_end = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[int, int, int]] = {}

    def first() -> None:
        with run_collection():
            first_in.set()
            first_may_end.wait(10)

    def second() -> None:
        first_in.wait(10)
        with run_collection():
            pass
        seen["after second"] = gc.get_threshold()
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    second_done.wait(10)
    first_may_end.set()
    for thread in threads:
        thread.join(10)
    assert seen["after second"][0] == max(RUN_THRESHOLD, before[0])  # the first run still goes
    assert gc.get_threshold() == before
    assert gcpolicy._runs == 0


def test_a_failing_run_restores_too() -> None:
    before = gc.get_threshold()
    try:
        with run_collection():
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
