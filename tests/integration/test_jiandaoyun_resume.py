"""A Jiandaoyun run that dies part-way resumes at the `updateTime` window it was in, not at the start.

`data/list` pages by data id, so before windows the only checkpoint was after the last page and a
killed run of 300 records read all 300 again. Now each window (~10 pages) ends on a checkpoint.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from erphub.connectors.base import SystemContext
from erphub.connectors.jiandaoyun import JiandaoyunConnector, JiandaoyunSettings
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.core.errors import RunFailed
from erphub.core.records import Page
from erphub.engine import Pipeline, PipelineRun, run_pipeline
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.sandbox.common import SandboxServer
from erphub.sandbox.jiandaoyun import DEMO_API_KEY, create_sandbox
from erphub.store import Store

_names = itertools.count()
N, PAGE, KILL_AFTER = 300, 10, 15
WINDOW_PAGES = 10  # windows of 100 records: a kill after 150 falls in the second


class CodePlan:
    key_field = "number"
    owned_fields = frozenset({"number"})

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped:
        return Mapped({"number": record["customer_code"]}, key=record["customer_code"])


class Killed(Exception):
    pass


def test_a_killed_run_resumes_at_its_window(sqlite_store: Store) -> None:
    sandbox = create_sandbox(seed_data=False)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    for i in range(N):  # one stamp a second, in id order (as a form filled over time)
        sandbox.state.insert_plain("customer_form", {"customer_code": f"C{i:04d}", "customer_name": f"客户{i}"},
                                   at=base + timedelta(seconds=i))
    tag = f"resume-{next(_names)}"
    with SandboxServer(sandbox) as server:
        crm = JiandaoyunConnector(JiandaoyunSettings(base_url=server.base_url, api_key=SecretStr(DEMO_API_KEY),
                                                     window_pages=WINDOW_PAGES),
                                  SystemContext(name="crm"))
        erp = memory_system(f"erp-{tag}")
        pipeline = Pipeline(name="customers", source_system="crm", source_entity="customer", source=crm,
                            target_system="erp", target_entity="customer",
                            target=MemoryConnector(MemorySettings(system=f"erp-{tag}", entities={"customer": "number"}),
                                                   SystemContext(name="erp")),
                            plan=CodePlan(), page_size=PAGE, batch_size=PAGE)
        pages = 0

        def die_after_page_k(run: PipelineRun, page: Page) -> object:
            nonlocal pages
            counts = run.process_page(page)
            pages += bool(page.records)
            if pages == KILL_AFTER:
                raise Killed(f"killed after page {KILL_AFTER}")
            return counts

        with pytest.raises(RunFailed):
            run_pipeline(pipeline, sqlite_store, page_step=die_after_page_k)
        cursor = sqlite_store.get_cursor("customers")
        assert cursor is not None  # a checkpoint before the last page, where there was none
        committed = sum(1 for r in sandbox.state.all("customer_form")
                        if datetime.fromisoformat(r["updateTime"].replace("Z", "+00:00")) <= cursor.updated_at)
        assert KILL_AFTER * PAGE - WINDOW_PAGES * PAGE * 2 <= committed < KILL_AFTER * PAGE

        delivered = len(erp.all("customer"))
        sandbox.log.clear()
        rerun = run_pipeline(pipeline, sqlite_store)
        assert rerun.status == "success"
        # The rerun reads from the window the kill fell in: never a record the checkpoint covers.
        assert rerun.counts["read"] == N - committed
        assert rerun.counts["created"] == N - delivered  # the rest of the window is found unchanged
        assert rerun.counts["unchanged"] == delivered - committed
        assert sorted(str(r.data["number"]) for r in erp.all("customer")) == [f"C{i:04d}" for i in range(N)]
        # ~10 pages a window: at most one partly filled page per window more than one long read needs
        assert sandbox.log.count("data/list") <= (N - committed) / PAGE * (1 + 1.5 / WINDOW_PAGES) + 2
        crm.close()
