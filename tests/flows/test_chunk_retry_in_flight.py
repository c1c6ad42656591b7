"""A retried chunk task whose failed batch had later batches in flight: nothing skipped, nothing twice.

`sync_pages` (flows/sync.py) writes a chunk's batches concurrently and commits them in order. When a
batch fails with an outage, the batches after it may already have landed in the target without a
commit; the task's retry starts again at the first batch not committed. Those records must then
be found by key and updated, never created a second time, and every record is counted once. Under a
real (embedded) Prefect server, the chunk task's own retry, a target whose writes finish out of order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from prefect import flow
from prefect.utilities.annotations import quote

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.core.records import Page
from erphub.engine import Pipeline, PipelineRun, run_pipeline
from erphub.store import Store
from tests.unit.engine.test_concurrent_writes import SlowTarget, numbers
from tests.unit.engine.test_engine import CustomerPlan, seed_customers

pytestmark = pytest.mark.prefect

RECORDS = 40  # pages of 8 in batches of 3: 5 pages, 15 batches, one chunk


@pytest.mark.parametrize("fail_at_call", [4, 7, 11])
def test_a_retried_chunk_with_batches_in_flight_delivers_every_record_once(
        tmp_path, request: pytest.FixtureRequest, fail_at_call: int) -> None:
    from erphub.flows import sync

    tag = f"inflight-{fail_at_call}"
    crm, erp = memory_system(f"crm-{tag}"), memory_system(f"erp-{tag}")
    seed_customers(crm, RECORDS)
    target = SlowTarget(MemorySettings(system=f"erp-{tag}", entities={"customer": "number"}),
                        random.Random(fail_at_call), fail_at_call)
    pipeline = Pipeline(name="customers", source_system="crm", source_entity="customer",
                        source=MemoryConnector(MemorySettings(system=f"crm-{tag}", entities={"customer": "code"}),
                                               SystemContext(name="crm")),
                        target_system="erp", target_entity="customer", target=target, plan=CustomerPlan(),
                        page_size=8, batch_size=3, write_concurrency=4)
    store = Store(f"sqlite:///{tmp_path}/state.db")
    chunk_task = sync.sync_pages.with_options(retries=1, retry_delay_seconds=0)
    task_runs: list[int] = []

    def in_chunks(run: PipelineRun, pages: Iterator[Page]) -> None:
        for chunk in sync.chunks(pages):
            task_runs.append(chunk.records)
            chunk_task(quote(run), quote(chunk), return_state=False)

    @flow(name="chunk-retry-in-flight", persist_result=False)
    def one_run() -> dict[str, int]:
        return run_pipeline(pipeline, store, pages_step=in_chunks).counts

    try:
        counts = one_run()
    finally:
        store.close()
    assert task_runs == [RECORDS], "the whole run was meant to be one chunk"
    assert target.most_in_flight > 1, "batches were meant to be in flight together"
    assert target.calls > 15, "the outage was meant to make the task retry"  # 15 batches + the refused one
    # In the target: each source record exactly once.
    assert numbers(erp) == [f"C{i:04d}" for i in range(RECORDS)]
    # Each record counted once; the batches that landed after the refused one, uncommitted, were found
    # by key on the retry and updated (the case this test is about), not created again.
    assert counts["read"] == RECORDS
    assert counts["created"] + counts["updated"] == RECORDS, str(dict(counts))
    assert counts["updated"] > 0, "no batch landed uncommitted before the retry"
    assert counts["unchanged"] == 0, str(dict(counts))  # the retry redid no committed batch
