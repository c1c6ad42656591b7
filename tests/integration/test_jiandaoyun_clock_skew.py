"""The overlap window: a CRM whose clock runs 2 s behind ours, edited during a run, loses nothing.

Jiandaoyun pages by data id with an `updateTime` window whose upper bound is our clock. An edit made
while a run is paging, to a record on a page already read, is stamped by the CRM's (slower) clock
below the checkpoint the run commits; only a re-read from `cursor - lag` finds it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from erphub.connectors.base import SystemContext
from erphub.connectors.jiandaoyun import JiandaoyunConnector, JiandaoyunSettings
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.core.records import Page
from erphub.engine import Pipeline, PipelineRun, run_pipeline
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.jiandaoyun import DEMO_API_KEY, create_sandbox
from erphub.store import Store

_names = itertools.count()


class PhonePlan:
    key_field = "number"
    owned_fields = frozenset({"number", "phone"})

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped:
        return Mapped({"number": record["customer_code"], "phone": record.get("phone")},
                      key=record["customer_code"])


@pytest.fixture
def skewed() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    sandbox = create_sandbox()
    # The CRM's clock runs 2 s behind ours (milliseconds, as the vendor stamps).
    def behind() -> datetime:
        now = datetime.now(UTC) - timedelta(seconds=2)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)
    sandbox.state.clock = behind
    with SandboxServer(sandbox) as server:
        yield sandbox, server


def test_edits_during_a_run_under_a_slow_crm_clock_all_arrive(skewed, sqlite_store: Store) -> None:
    sandbox, server = skewed
    tag = f"skew-{next(_names)}"
    crm = JiandaoyunConnector(JiandaoyunSettings(base_url=server.base_url, api_key=SecretStr(DEMO_API_KEY)),
                              SystemContext(name="crm"))
    erp_system = memory_system(f"erp-{tag}")
    erp = MemoryConnector(MemorySettings(system=f"erp-{tag}", entities={"customer": "number"}),
                          SystemContext(name="erp"))
    pipeline = Pipeline(name="customers", source_system="crm", source_entity="customer", source=crm,
                        target_system="erp", target_entity="customer", target=erp, plan=PhonePlan(),
                        page_size=10, batch_size=10, lag_s=crm.read_lag_s)
    assert run_pipeline(pipeline, sqlite_store).status == "success"
    ids = [r["_id"] for r in sorted(sandbox.state.all("customer_form"), key=lambda r: r["_id"])]
    assert len(ids) == 60

    # 40 edits while the next run pages: after its first page the people edit 20 records on pages the
    # run already read and 20 on pages still to come; the latest of those sets the checkpoint.
    edited = ids[:20] + ids[40:60]
    touched_first = ids[30:40]
    sandbox.state.touch("customer_form", touched_first, changes={"phone": "13800000000"})

    def page_step(run: PipelineRun, page: Page) -> object:
        counts = run.process_page(page)
        if run.counts["read"] == len(page.records) and page.records:  # after the first page only
            sandbox.state.touch("customer_form", ids[:20], changes={"phone": "13911112222"})
            sandbox.state.touch("customer_form", ids[40:60], changes={"phone": "13911112222"})
        return counts

    assert run_pipeline(pipeline, sqlite_store, page_step=page_step).status == "success"
    assert run_pipeline(pipeline, sqlite_store).status == "success"

    codes = {r["_id"]: r["customer_code"] for r in sandbox.state.all("customer_form")}
    phones = {str(r.data["number"]): r.data["phone"] for r in erp_system.all("customer")}
    arrived = sum(1 for data_id in edited if phones.get(codes[data_id]) == "13911112222")
    assert arrived == len(edited) == 40
    crm.close()
