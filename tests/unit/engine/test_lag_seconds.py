"""The overlap window: each incremental run re-reads from cursor - lag; `lag_seconds` sets it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from erphub.config.loader import load_config
from erphub.connectors.memory import memory_system
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from tests.unit.engine.configs import memory_pipeline_config

MAPPING = """\
source: customer
target: customer
key: number
fields:
  number: {from: code}
  name: {from: name}
"""


@pytest.mark.parametrize(("lag", "arrived"), [("lag_seconds: 60", 11), ("lag_seconds: 0", 10), ("", 10)])
def test_a_record_committed_late_behind_the_cursor(tmp_path: Path, lag: str, arrived: int) -> None:
    tag = f"{tmp_path.name}"
    crm, erp = memory_system(f"crm-{tag}"), memory_system(f"erp-{tag}")
    for i in range(10):
        crm.put("customer", {"code": f"C{i}", "name": f"客户{i}"})
    config = memory_pipeline_config(tmp_path, "customers", MAPPING, source=(f"crm-{tag}", "customer", "code"),
                                    target=(f"erp-{tag}", "customer", "number"), options=lag)
    with Hub(load_config(config)) as hub:
        pipeline = hub.pipeline("customers")
        # unset: the memory connector's own default (one process, one clock: no window)
        assert pipeline.lag_s == (60.0 if "60" in lag else 0.0)
        assert run_pipeline(pipeline, hub.store).counts["created"] == 10
        writes = erp.write_calls
        # A producer's transaction stamped this row 30 s before the newest row read, and committed after.
        newest = max(r.updated_at for r in crm.all("customer"))
        crm.put("customer", {"code": "LATE", "name": "迟到的客户"}, updated_at=newest - timedelta(seconds=30))
        again = run_pipeline(pipeline, hub.store)
        assert len(erp.all("customer")) == arrived
        if arrived == 11:
            # The window re-read the ten delivered ones too: counted unchanged, never written.
            assert (again.counts["created"], again.counts["unchanged"]) == (1, 10)
            assert erp.write_calls == writes + 1
