"""The sync flow under a real (embedded) Prefect server: pages as tasks, outage retries, failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from erphub.connectors.memory import memory_system

pytestmark = pytest.mark.prefect

MAPPING = """\
source: customer
target: customer
key: number
fields:
  number: {from: code}
  name: {from: name, validate: {required: true}}
"""


def write_config(tmp_path: Path, tag: str, *, retries: int) -> Path:
    (tmp_path / "customer.yaml").write_text(MAPPING, encoding="utf-8")
    path = tmp_path / "hub.yaml"
    path.write_text(f"""\
store: {{url: "sqlite:///state.db"}}
systems:
  crm: {{connector: memory, settings: {{system: crm-{tag}, entities: {{customer: code}}}}}}
  erp: {{connector: memory, settings: {{system: erp-{tag}, entities: {{customer: number}}}}}}
pipelines:
  customers:
    source: {{system: crm, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: customer.yaml
    page_size: 4
    flow_retries: {retries}
    flow_retry_delay_s: 0
""", encoding="utf-8")
    return path


def seed(tag: str, n: int) -> None:
    crm = memory_system(f"crm-{tag}")
    for i in range(n):
        crm.put("customer", {"code": f"C{i:03d}", "name": f"客户{i}"})


def test_flow_runs_pages_as_tasks_and_a_second_run_moves_nothing(tmp_path: Path) -> None:
    from erphub.flows.sync import sync_pipeline

    seed("flow-a", 10)
    config = write_config(tmp_path, "flow-a", retries=0)
    first = sync_pipeline(pipeline="customers", config_path=str(config))
    assert first["status"] == "success"
    assert first["counts"]["created"] == 10 and first["counts"]["read"] == 10
    assert len(memory_system("erp-flow-a").all("customer")) == 10
    second = sync_pipeline(pipeline="customers", config_path=str(config))
    assert second["counts"]["read"] == 0 and second["counts"]["created"] == 0


def test_a_short_outage_is_retried_by_the_page_task_and_nothing_duplicates(tmp_path: Path) -> None:
    from erphub.flows.sync import sync_pipeline

    seed("flow-b", 6)
    memory_system("erp-flow-b").fail_next_writes = 1
    config = write_config(tmp_path, "flow-b", retries=2)
    result = sync_pipeline(pipeline="customers", config_path=str(config))
    assert result["status"] == "success"
    erp = memory_system("erp-flow-b")
    assert sorted(r.data["number"] for r in erp.all("customer")) == [f"C{i:03d}" for i in range(6)]


def test_a_retried_chunk_starts_again_at_the_page_that_failed(tmp_path: Path) -> None:
    """Pages run in chunks of several pages per task (flows/sync.py says why); an outage on the
    chunk's second page retries from that page: the first, committed, is neither written nor counted
    again."""
    from erphub.flows import sync

    seed("flow-d", 8)  # two pages of 4, one chunk
    erp = memory_system("erp-flow-d")
    config = write_config(tmp_path, "flow-d", retries=2)
    pages_seen = []

    def outage_after_first_page(counts: dict[str, int]) -> None:
        pages_seen.append(counts["read"])
        if len(pages_seen) == 1:
            erp.fail_next_writes = 1

    sync.progress_hook = outage_after_first_page
    try:
        result = sync.sync_pipeline(pipeline="customers", config_path=str(config))
    finally:
        sync.progress_hook = None
    assert result["status"] == "success"
    assert result["counts"]["read"] == 8 and result["counts"]["created"] == 8
    assert result["counts"]["unchanged"] == 0  # page 1 was not processed again
    assert erp.write_calls == 3  # page 1, page 2 refused by the outage, page 2 again
    assert sorted(r.data["number"] for r in erp.all("customer")) == [f"C{i:03d}" for i in range(8)]


def test_a_read_failure_is_not_retried_as_an_outage(tmp_path: Path) -> None:
    """Pages are read by the flow, outside the tasks: a source down mid-read fails the run at once."""
    from erphub.flows.sync import sync_pipeline

    seed("flow-e", 3)
    memory_system("crm-flow-e").down = True
    config = write_config(tmp_path, "flow-e", retries=2)
    state = sync_pipeline(pipeline="customers", config_path=str(config), return_state=True)
    assert state.is_failed()
    assert memory_system("erp-flow-e").write_calls == 0


def test_a_lasting_outage_fails_the_flow_and_keeps_the_cursor(tmp_path: Path) -> None:
    from erphub.flows.sync import sync_pipeline
    from erphub.store import Store

    seed("flow-c", 3)
    memory_system("erp-flow-c").down = True
    config = write_config(tmp_path, "flow-c", retries=1)
    state = sync_pipeline(pipeline="customers", config_path=str(config), return_state=True)
    assert state.is_failed()
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert store.get_cursor("customers") is None
        assert store.recent_runs("customers", 1)[0].status == "failed"
    finally:
        store.close()
