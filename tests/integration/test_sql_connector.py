"""The sql connector against real SQLite, PostgreSQL and MariaDB (each test runs on all three).

PostgreSQL (127.0.0.1:5432, user postgres, db test) and MariaDB (127.0.0.1:3306, root, db test)
are skipped when unreachable, except under CI=true where they are required.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import event, select

from erphub.connectors.base import SystemContext
from erphub.connectors.sql import SqlConnector, SqlSettings
from erphub.core.errors import ConnectorError
from erphub.core.records import Cursor, WriteAction, WriteRequest
from tests.contract.harnesses.sql_sqlite import SqlBackend, backend_fixture

T0 = dt.datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlBackend]:
    with backend_fixture(request.param, tmp_path) as b:
        yield b


def make(backend: SqlBackend, **entity_overrides: object) -> SqlConnector:
    settings = SqlSettings.model_validate(backend.settings(**entity_overrides))
    return SqlConnector(settings, SystemContext(name=f"sql-{backend.name}"))


def req(n: int, *, customer: str | None = "CUS-1",
        lines: list[dict[str, object]] | None = None) -> WriteRequest:
    key = f"SO-{n:05d}"
    return WriteRequest(source_id=f"src-{n}", key=key, target_id=None,
                        data={"order_no": key, "customer_code": customer, "amount": Decimal("10.50") * n,
                              "lines": lines or [{"sku": "1.01.001", "qty": n, "price": Decimal("9.90")}]},
                        idempotency_key=f"idem-{n}")


def test_entities_come_from_reflection(backend: SqlBackend) -> None:
    conn = make(backend)
    try:
        spec = conn.entities()["sales_order"]
        assert spec.key_field == "order_no"
        expected = {"id", "order_no", "customer_code", "amount", "lines", "status", "updated_at"}
        assert expected <= set(spec.fields or ())
    finally:
        conn.close()


def test_bad_record_fails_alone_and_retry_never_duplicates(backend: SqlBackend) -> None:
    conn = make(backend, status_column=None)
    try:
        batch = [req(1), req(2, customer=None), req(3)]  # customer_code is NOT NULL
        results = conn.write("sales_order", batch)
        assert [r.source_id for r in results] == ["src-1", "src-2", "src-3"]
        assert results[0].ok and results[0].action is WriteAction.CREATED
        assert results[2].ok and results[2].action is WriteAction.CREATED
        assert not results[1].ok and results[1].error is not None and results[1].target_id is None
        assert backend.count() == 2

        again = conn.write("sales_order", [req(1), req(3)])  # a retried batch lands on the same rows
        assert [r.action for r in again] == [WriteAction.UPDATED, WriteAction.UPDATED]
        assert [r.target_id for r in again] == [results[0].target_id, results[2].target_id]
        assert backend.count() == 2
        assert conn.lookup("sales_order", ["SO-00001", "SO-00009"]) == {"SO-00001": results[0].target_id}
    finally:
        conn.close()


def _upserts_sent(conn: SqlConnector) -> list[int]:
    """Rows per upsert statement the connector sends (a list that grows as it writes)."""
    sent: list[int] = []

    def count(_c: object, _cur: object, statement: str, params: object, _ctx: object, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            sent.append(len(params) if many and isinstance(params, list | tuple) else 1)

    event.listen(conn._engine, "before_cursor_execute", count)
    return sent


def test_a_batch_is_one_upsert_statement(backend: SqlBackend) -> None:
    conn = make(backend, status_column=None)
    try:
        sent = _upserts_sent(conn)
        results = conn.write("sales_order", [req(n) for n in range(1, 41)])
        assert all(r.ok and r.action is WriteAction.CREATED for r in results)
        # One statement for the batch: PostgreSQL and SQLite send one multi-row INSERT ... RETURNING,
        # PyMySQL rewrites its executemany of 40 rows into one multi-row INSERT.
        assert len(sent) == 1
        again = conn.write("sales_order", [req(n) for n in range(1, 41)])
        assert [r.target_id for r in again] == [r.target_id for r in results]
        assert {r.action for r in again} == {WriteAction.UPDATED}
        assert backend.count() == 40
    finally:
        conn.close()


def test_one_bad_row_in_a_batch_is_reported_alone_and_the_rest_is_written(backend: SqlBackend) -> None:
    conn = make(backend, status_column=None)
    try:
        conn.write("sales_order", [req(n) for n in (3, 4)])  # two rows exist: the batch updates them
        batch = [req(n) for n in range(1, 31)]
        batch[16] = req(17, customer=None)  # customer_code is NOT NULL: this row alone is refused
        batch[3] = req(4, customer="CUS-NEW")
        results = conn.write("sales_order", batch)
        assert [r.source_id for r in results] == [f"src-{n}" for n in range(1, 31)]
        failed = [r for r in results if not r.ok]
        assert [r.source_id for r in failed] == ["src-17"] and failed[0].target_id is None
        with backend.engine.connect() as db:
            rows = {r.order_no: r for r in db.execute(select(backend.table))}
        assert sorted(rows) == [f"SO-{n:05d}" for n in range(1, 31) if n != 17]
        assert rows["SO-00004"].customer_code == "CUS-NEW"
        assert rows["SO-00030"].amount == Decimal("315.00")
        by_key = {r.source_id: r.target_id for r in results if r.ok}
        assert by_key == {f"src-{n}": str(rows[f"SO-{n:05d}"].id) for n in range(1, 31) if n != 17}
        assert [r.action for r in results[2:4]] == [WriteAction.UPDATED, WriteAction.UPDATED]
        assert results[0].action is WriteAction.CREATED
    finally:
        conn.close()


def test_unknown_column_is_a_record_error(backend: SqlBackend) -> None:
    conn = make(backend)
    try:
        bad = WriteRequest("s", "SO-1", None, {"order_no": "SO-1", "customer_code": "C", "nope": 1}, "i")
        [result] = conn.write("sales_order", [bad])
        assert result.error is not None
        assert (result.error.code, result.error.field) == ("unknown_field", "nope")
    finally:
        conn.close()


def test_incremental_read_exactly_once_across_pages(backend: SqlBackend) -> None:
    # 7 rows share one timestamp across page boundaries of 3, then 2 later rows.
    backend.seed([T0] * 7 + [T0 + dt.timedelta(microseconds=1), T0 + dt.timedelta(seconds=5)])
    conn = make(backend, status_column=None)
    try:
        pages = list(conn.read_changes("sales_order", None, page_size=3))
        ids = [r.id for p in pages for r in p.records]
        assert len(ids) == 9 and len(set(ids)) == 9
        assert [len(p.records) for p in pages] == [3, 3, 3]
        keys = [(r.updated_at, int(r.id)) for p in pages for r in p.records]
        assert keys == sorted(keys)
        assert all(r.updated_at.tzinfo is not None for p in pages for r in p.records)

        # Resume from a checkpoint in the middle of the shared timestamp: the rest, once each.
        first = pages[0].checkpoint
        assert first is not None and first.updated_at == T0
        rest = [r.id for p in conn.read_changes("sales_order", first, page_size=4) for r in p.records]
        assert rest == ids[3:]

        # Nothing after the last checkpoint: one empty page without a checkpoint.
        last = pages[-1].checkpoint
        tail = list(conn.read_changes("sales_order", last, page_size=3))
        assert len(tail) == 1 and tail[0].records == [] and tail[0].checkpoint is None

        # `until` bounds the window inclusively at a timestamp (the engine's "\uffff" id).
        bounded = [r.id for p in conn.read_changes("sales_order", None, page_size=50,
                                                   until=Cursor(T0, "\uffff")) for r in p.records]
        assert bounded == ids[:7]
        # A since cursor with an empty id includes every row at that timestamp.
        assert len([r for p in conn.read_changes("sales_order", Cursor(T0), page_size=50)
                    for r in p.records]) == 9
    finally:
        conn.close()


def test_json_lines_round_trip(backend: SqlBackend) -> None:
    conn = make(backend, status_column=None)
    try:
        lines = [{"sku": "1.01.002", "qty": 2, "price": Decimal("12.30")}, {"sku": "1.01.003", "qty": 1}]
        [res] = conn.write("sales_order", [req(5, lines=lines)])
        assert res.ok
        [page] = list(conn.read_changes("sales_order", None, page_size=10))
        [record] = page.records
        assert record.id == res.target_id
        assert record.data["lines"] == [{"sku": "1.01.002", "qty": 2, "price": "12.30"},
                                        {"sku": "1.01.003", "qty": 1}]
        assert record.data["amount"] == Decimal("52.50")
    finally:
        conn.close()


def test_handshake_status_read_and_acknowledge(backend: SqlBackend) -> None:
    ids = backend.seed([T0, T0, T0 + dt.timedelta(seconds=1)], status="new")
    backend.seed([T0], status="done", start=100)
    conn = make(backend)
    try:
        read = [r.id for p in conn.read_changes("sales_order", None, page_size=10) for r in p.records]
        assert read == ids  # the 'done' row is not offered
        assert conn.acknowledge("sales_order", ids[:2], ok=True) == 2
        assert conn.acknowledge("sales_order", ids[2:], ok=False, error="customer CUS-9 unknown") == 1
        assert conn.acknowledge("sales_order", ids[:2], ok=True) == 0  # idempotent
        [empty] = list(conn.read_changes("sales_order", None, page_size=10))
        assert empty.records == []
        assert backend.status_of(ids[2]) == ("error", "customer CUS-9 unknown")
        assert backend.status_of(ids[0]) == ("done", None)
        # A write by the hub hands the row over as 'new' for the other side.
        [res] = conn.write("sales_order", [req(7)])
        assert res.ok and backend.status_of(res.target_id or "")[0] == "new"
    finally:
        conn.close()


def test_check_passes_and_reports_a_missing_table(backend: SqlBackend) -> None:
    conn = make(backend)
    conn.check()
    conn.close()
    broken = make(backend, table="no_such_table_x")
    with pytest.raises(ConnectorError, match="no_such_table_x"):
        broken.check()
    broken.close()


def test_password_is_a_secret_not_part_of_the_url(backend: SqlBackend) -> None:
    with pytest.raises(ValidationError):
        SqlSettings.model_validate({**backend.settings(), "url": "postgresql+psycopg://u:pw@127.0.0.1/x"})


def test_rejected_password_never_appears_in_the_error() -> None:
    secret = "s3cret-Very-Unlikely-42"
    settings = SqlSettings(url="mysql+pymysql://erphub_nobody@127.0.0.1:3306/test",
                           password=SecretStr(secret),
                           entities={"x": {"table": "x", "key_column": "k"}})  # type: ignore[dict-item]
    conn = SqlConnector(settings, SystemContext(name="sql-bad", secrets=(secret,)))
    try:
        with pytest.raises(ConnectorError) as info:
            conn.check()
        assert secret not in str(info.value)
        assert secret not in repr(settings)
    finally:
        conn.close()
