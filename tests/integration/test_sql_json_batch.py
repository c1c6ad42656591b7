"""PostgreSQL's batch upsert through json_to_recordset writes exactly what the generic statement writes.

Same rows, two identical tables: one written by SQLAlchemy's own upsert (one bind per value, psycopg's
typed parameters), one by the JSON batch; the database's rows must be equal, column by column, under a
session time zone that is not UTC (one with a daylight-saving gap), and what would be read otherwise is
left to the generic statement.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from erphub.connectors.sql.json_batch import JsonBatchUpserts, NotPlain
from erphub.connectors.sql.upsert import Upserts

COLUMNS = """(id bigserial PRIMARY KEY, code text NOT NULL UNIQUE, name varchar(40), qty integer,
              big bigint, amount numeric(18, 2), ratio double precision, active boolean, due date,
              at_local timestamp, at_utc timestamptz, clock time, ref uuid)"""

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
ROWS: list[dict[str, Any]] = [
    {"code": "A-1", "name": "上海星辰 \"quoted\" \\ back", "qty": 3, "big": 2**40, "amount": Decimal("12.50"),
     "ratio": 0.1, "active": True, "due": dt.date(2026, 12, 3),
     "at_local": dt.datetime(2026, 3, 8, 2, 30),  # no such hour in New York that day (DST): kept as given
     "at_utc": dt.datetime(2026, 12, 3, 0, 0, tzinfo=dt.UTC), "clock": dt.time(9, 30), "ref": uuid.UUID(int=7)},
    {"code": "A-2", "name": None, "qty": None, "big": None, "amount": 7, "ratio": None, "active": False,
     "due": None, "at_local": dt.datetime(2026, 1, 1, 12, 0), "at_utc": dt.datetime(2026, 1, 1, 12, 0),
     "clock": None, "ref": None},
    {"code": "A-3", "name": "", "qty": "12", "big": 0, "amount": "3.456", "ratio": 1e-9, "active": None,
     "due": "2026-02-28", "at_local": None, "at_utc": dt.datetime(2026, 6, 1, 1, 2, 3, 456789, tzinfo=SHANGHAI),
     "clock": dt.time(23, 59, 59, 123456), "ref": str(uuid.UUID(int=9))},
]


@pytest.fixture(params=["Asia/Shanghai", "America/New_York"])
def engine(postgres_schema: str, request: pytest.FixtureRequest) -> Any:
    engine = sa.create_engine(postgres_schema)
    zone = request.param

    @sa.event.listens_for(engine, "connect")
    def _zone(dbapi_connection: Any, _record: Any) -> None:  # the URL's options hold the search_path
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET TIME ZONE '{zone}'")
        dbapi_connection.commit()

    with engine.begin() as conn:
        for name in ("generic", "batched"):
            conn.exec_driver_sql(f"CREATE TABLE {name} {COLUMNS}")
    yield engine
    engine.dispose()


def _tables(engine: Any) -> tuple[sa.Table, sa.Table]:
    meta = sa.MetaData()
    return (sa.Table("generic", meta, autoload_with=engine), sa.Table("batched", meta, autoload_with=engine))


def _contents(engine: Any, table: sa.Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row[1:]) for row in conn.execute(sa.select(table).order_by(table.c.code))]


def test_the_json_batch_writes_what_the_generic_upsert_writes(engine: Any) -> None:
    generic, batched = _tables(engine)
    columns = tuple(sorted(ROWS[0]))
    with engine.begin() as conn:
        conn.execute(Upserts(generic, "code").statement("postgresql", columns), ROWS)
        ids = JsonBatchUpserts(batched, "code").write(conn, columns, ROWS, returning="id")
    assert _contents(engine, batched) == _contents(engine, generic)
    with engine.connect() as conn:
        assert ids == dict(conn.execute(sa.select(batched.c.code, batched.c.id)).all())
    assert _contents(engine, batched)[0][8] == dt.datetime(2026, 3, 8, 2, 30)


def test_a_value_too_long_for_its_column_is_refused_not_cut(engine: Any) -> None:
    """An explicit cast to varchar(40) would cut the value silently; assignment refuses it, as the
    generic statement's parameter is refused, so the connector can fail that row alone."""
    _, batched = _tables(engine)
    with engine.begin() as conn, pytest.raises(sa.exc.DataError, match="too long"):
        JsonBatchUpserts(batched, "code").write(conn, ("code", "name"), [{"code": "L", "name": "x" * 41}], "id")
    with engine.begin() as conn, pytest.raises(sa.exc.DataError):
        JsonBatchUpserts(batched, "code").write(conn, ("amount", "code"), [{"code": "L", "amount": Decimal("1e20")}],
                                                "id")


def test_updates_leave_other_columns_and_a_key_given_twice_ends_as_its_last_row(engine: Any) -> None:
    _, batched = _tables(engine)
    upserts = JsonBatchUpserts(batched, "code")
    with engine.begin() as conn:
        first = upserts.write(conn, ("code", "name", "qty"), [{"code": "K", "name": "one", "qty": 1}], "id")
        again = upserts.write(conn, ("code", "name"), [{"code": "K", "name": "two"}, {"code": "K", "name": "three"},
                                                        {"code": "L", "name": "new"}], "id")
        only_keys = upserts.write(conn, ("code",), [{"code": "K"}, {"code": "M"}], "id")
    assert again["K"] == first["K"] and set(again) == {"K", "L"}
    assert set(only_keys) == {"M"}  # DO NOTHING returns no row for a key that exists
    with engine.connect() as conn:
        rows = dict((code, (name, qty)) for code, name, qty in conn.execute(
            sa.select(batched.c.code, batched.c.name, batched.c.qty)))
    assert rows == {"K": ("three", 1), "L": ("new", None), "M": (None, None)}


@pytest.mark.parametrize(("column", "value"), [
    ("ratio", float("nan")), ("ratio", float("inf")), ("name", b"bytes"), ("name", [1, 2]), ("name", {"a": 1}),
    ("name", dt.timedelta(days=1)), ("name", 0.5),
    ("due", dt.datetime(2026, 12, 3, 23, 0, tzinfo=dt.UTC)),  # psycopg's route converts it to the session's date
    ("at_local", dt.datetime(2026, 12, 3, 8, 0, tzinfo=SHANGHAI)),  # converted to the session's zone there
    ("clock", dt.time(9, 30, tzinfo=dt.UTC)), ("qty", 3.0), ("qty", Decimal("3")), ("amount", 0.1),
    ("active", 1), ("ref", 7)])
def test_a_value_read_otherwise_there_leaves_the_batch_to_the_generic_statement(engine: Any, column: str,
                                                                                value: Any) -> None:
    _, batched = _tables(engine)
    with engine.begin() as conn, pytest.raises(NotPlain):
        JsonBatchUpserts(batched, "code").write(conn, ("code", column), [{"code": "X", column: value}], "id")


def test_columns_with_no_plain_text_input_are_not_batched_this_way(postgres_schema: str) -> None:
    engine = sa.create_engine(postgres_schema)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE odd (id serial PRIMARY KEY, code text UNIQUE, doc jsonb, "
                                 "blob bytea, tags text[])")
        odd = sa.Table("odd", sa.MetaData(), autoload_with=engine)
        upserts = JsonBatchUpserts(odd, "code")
        assert upserts.usable(("code",))
        assert not any(upserts.usable(("code", c)) for c in ("doc", "blob", "tags"))
    finally:
        engine.dispose()
