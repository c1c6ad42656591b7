"""Staging tables are commit-order safe: a producer transaction on real PostgreSQL that began before
rows the hub read, and commits after the hub's read, loses none of its rows (plain and handshake).

The producer stamps its 40 rows when its transaction begins, as `DEFAULT now()` does; 60 rows
stamped later are committed first and read; then the 40 commit behind the cursor.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from sqlalchemy import insert

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.connectors.sql import SqlConnector, SqlSettings
from erphub.engine import Pipeline, run_pipeline
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.store import Store
from tests.contract.harnesses.sql_sqlite import SqlBackend, backend_fixture

_names = itertools.count()


class OrderPlan:
    key_field = "order_no"
    owned_fields = None

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped:
        return Mapped({"order_no": record["order_no"], "customer": record["customer_code"]}, key=record["order_no"])


@pytest.fixture
def postgres(tmp_path) -> Iterator[SqlBackend]:
    with backend_fixture("postgres", tmp_path) as backend:
        yield backend


def row(n: int, stamp: dt.datetime, status: str | None) -> dict[str, Any]:
    return {"order_no": f"SO-LATE-{n:04d}", "customer_code": "CUS-1", "amount": n, "lines": [],
            "status": status, "updated_at": stamp}


@pytest.mark.parametrize("handshake", [False, True], ids=["plain", "handshake"])
def test_rows_committed_late_by_an_older_transaction_all_arrive(postgres: SqlBackend, sqlite_store: Store,
                                                                handshake: bool) -> None:
    status = "new" if handshake else None
    overrides: dict[str, Any] = {} if handshake else {"status_column": None}
    source = SqlConnector(SqlSettings.model_validate(postgres.settings(**overrides)), SystemContext(name="staging"))
    tag = f"late-{next(_names)}"
    target_system = memory_system(f"erp-{tag}")
    target = MemoryConnector(MemorySettings(system=f"erp-{tag}", entities={"order": "order_no"}),
                             SystemContext(name="erp"))
    pipeline = Pipeline(name="orders", source_system="staging", source_entity="sales_order", source=source,
                        target_system="erp", target_entity="order", target=target, plan=OrderPlan(),
                        page_size=25, batch_size=25, lag_s=source.read_lag_s)
    began = dt.datetime.now(dt.UTC)
    producer = postgres.engine.connect()
    try:
        late = producer.begin()  # a second real transaction: begins now, commits after the hub's read
        producer.execute(insert(postgres.table), [row(n, began, status) for n in range(40)])
        with postgres.engine.begin() as other:
            other.execute(insert(postgres.table),
                          [row(n, began + dt.timedelta(seconds=1), status) for n in range(40, 100)])
        first = run_pipeline(pipeline, sqlite_store)
        assert first.counts["created"] == 60
        late.commit()
    finally:
        producer.close()
    run_pipeline(pipeline, sqlite_store)
    delivered = {str(r.data["order_no"]) for r in target_system.all("order")}
    assert len(delivered) == 100
    if handshake:
        assert {postgres.status_of(str(i))[0] for i in range(1, 101)} == {"done"}
    source.close()
