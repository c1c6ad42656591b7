"""Batches written concurrently, finishing out of order: nothing skipped, nothing duplicated, in the target."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import pytest

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, MemorySystem
from erphub.core.errors import RunFailed, TransientError
from erphub.core.records import WriteRequest, WriteResult
from erphub.engine import Pipeline, run_pipeline
from erphub.store import Store
from tests.unit.engine.test_engine import CustomerPlan, seed_customers


class SlowTarget(MemoryConnector):
    """A memory target whose writes take a random time (so later batches finish first) and may fail.

    The failing call waits (up to a few seconds) until a later batch (by key, which follows the source's
    order here; call numbers need not, as threads enter `write` in any order) has landed before it raises, so
    "a later batch is in the target, uncommitted, when the earlier one fails" happens on every run
    instead of only when the random delays allow it (a CI run once saw none land).
    """

    LATER_LANDING_WAIT = 3.0

    def __init__(self, settings: MemorySettings, rng: random.Random, fail_at_call: int = 0) -> None:
        super().__init__(settings, SystemContext(name="erp"))
        self.rng, self.fail_at_call = rng, fail_at_call
        self.lock = threading.Lock()
        self.landed = threading.Condition(self.lock)
        self.latest_landed = ""  # the highest key of a batch whose write reached the target
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.finished: list[str] = []  # first source id of each batch, in the order the writes finished
        self.lookups = 0
        self.later_landed_first = False  # the failing call saw a later batch land before it failed

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        with self.lock:
            self.calls += 1
            call = self.calls
            delay = 0.08 if call % 4 == 1 else self.rng.uniform(0.0, 0.02)  # some batches finish last
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(delay)
            if call == self.fail_at_call:
                with self.landed:
                    self.later_landed_first = self.landed.wait_for(lambda: self.latest_landed > batch[-1].key,
                                                                   timeout=self.LATER_LANDING_WAIT)
                raise TransientError("the target went away", system="erp")
            with self.landed:
                results = super().write(entity, batch)
                self.finished.append(batch[0].source_id)
                self.latest_landed = max(self.latest_landed, batch[-1].key)
                self.landed.notify_all()
                return results
        finally:
            with self.lock:
                self.in_flight -= 1

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        with self.lock:
            self.lookups += 1
            return super().lookup(entity, keys)


def make(systems: tuple[MemorySystem, MemorySystem], request: pytest.FixtureRequest, seed: int,
         fail_at_call: int = 0) -> tuple[Pipeline, SlowTarget]:
    tag = request.node.name
    crm = MemoryConnector(MemorySettings(system=f"crm-{tag}", entities={"customer": "code"}), SystemContext(name="crm"))
    erp = SlowTarget(MemorySettings(system=f"erp-{tag}", entities={"customer": "number"}), random.Random(seed),
                     fail_at_call)
    pipeline = Pipeline(name="customers", source_system="crm", source_entity="customer", source=crm,
                        target_system="erp", target_entity="customer", target=erp, plan=CustomerPlan(),
                        page_size=8, batch_size=3, write_concurrency=4)
    return pipeline, erp


def numbers(erp: MemorySystem) -> list[str]:
    return sorted(str(r.data["number"]) for r in erp.all("customer"))


def test_out_of_order_writes_deliver_every_record_once(store: Store, systems, request) -> None:
    crm, erp = systems
    seed_customers(crm, 60)
    pipeline, target = make(systems, request, seed=7)
    info = run_pipeline(pipeline, store)
    assert info.status == "success"
    assert numbers(erp) == [f"C{i:04d}" for i in range(60)]
    assert target.most_in_flight > 1, "batches were meant to be written concurrently"
    assert target.most_in_flight <= 4
    assert target.finished != sorted(target.finished), "the writes were meant to finish out of order"
    assert target.lookups == target.calls == 23  # one key lookup per batch (pages of 8 in batches of 3)
    last = max(r.cursor().key() for r in crm.all("customer"))
    cursor = store.get_cursor("customers")
    assert cursor is not None and cursor.key() == last
    again = run_pipeline(pipeline, store)
    assert again.counts["created"] == 0 and again.counts["updated"] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_failed_batch_among_concurrent_ones_never_moves_the_cursor_past_it(store: Store, systems, request,
                                                                              seed: int) -> None:
    crm, erp = systems
    seed_customers(crm, 60)
    rng = random.Random(seed)
    pipeline, target = make(systems, request, seed=seed, fail_at_call=rng.randint(2, 18))
    with pytest.raises(RunFailed):
        run_pipeline(pipeline, store)
    assert target.later_landed_first, "a later batch was meant to be in the target when this one failed"
    cursor = store.get_cursor("customers")
    links = store.links_for("customers", [r.id for r in crm.all("customer")])
    # Every record the cursor has passed is in the target and linked: a crash now would skip nothing.
    for record in crm.all("customer"):
        if cursor is not None and record.cursor().key() <= cursor.key():
            assert record.id in links and links[record.id].state == "synced", record.id
    # Later batches may have landed without a commit: the next run finds them by key, never twice.
    target.fail_at_call = 0
    assert run_pipeline(pipeline, store).status == "success"
    assert numbers(erp) == [f"C{i:04d}" for i in range(60)]


def test_batches_sharing_a_match_key_are_never_written_at_once(store: Store, systems, request) -> None:
    crm, erp = systems
    for i in range(12):  # two source records per key, in different batches: one create, one key conflict
        crm.put("customer", {"code": f"K{i % 6:02d}", "name": f"客户 {i}", "status": "customer"})
    pipeline, _ = make(systems, request, seed=11)
    run_pipeline(pipeline, store)
    assert numbers(erp) == [f"K{i:02d}" for i in range(6)]
