"""erphub.store.bulk.upsert: one statement of many VALUES rows on SQLite, split at SQLite's variable
limit; the same rows and the same conflict rules as the executemany it replaced, on both databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from erphub.store import Store
from erphub.store.bulk import upsert

METADATA = MetaData()
ITEMS = Table(
    "bulk_items", METADATA,
    Column("owner", String(20), primary_key=True),
    Column("code", String(20), primary_key=True),
    Column("name", String(50)),
    Column("note", String(50)),
    Column("size", Integer),
)


def rows(count: int, *, name: str = "n", note: str | None = "kept") -> list[dict[str, Any]]:
    return [{"owner": "o", "code": f"c{i:04d}", "name": f"{name}{i}", "note": note, "size": i} for i in range(count)]


def contents(session: Session) -> dict[str, tuple[Any, ...]]:
    return {row.code: (row.name, row.note, row.size) for row in session.execute(select(ITEMS))}


@pytest.fixture
def engine(store: Store) -> Iterator[Engine]:
    """The store's own engine (SQLite and PostgreSQL), with the test's table beside the store's."""
    METADATA.create_all(store.engine)
    yield store.engine
    METADATA.drop_all(store.engine)


def test_inserts_then_updates_with_the_conflict_rules(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, rows(250), conflict=("owner", "code"), update=("name", "note", "size"),
               keep_when_null=("note",))
    changed = rows(300, name="m", note=None)
    changed.append({**changed[0], "name": "last wins"})  # a key twice in one batch: the last row counts
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, changed, conflict=("owner", "code"), update=("name", "note", "size"),
               keep_when_null=("note",))
    with Session(engine) as session:
        found = contents(session)
    assert len(found) == 300
    assert found["c0000"] == ("last wins", "kept", 0)
    assert found["c0249"] == ("m249", "kept", 249)   # NULL kept the stored note
    assert found["c0250"] == ("m250", None, 250)     # new rows take the NULL


def test_only_if_null_updates_only_rows_whose_column_is_null(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, [*rows(2), {"owner": "o", "code": "z", "name": "z", "note": None, "size": 0}],
               conflict=("owner", "code"), update=("name", "note"))
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, [{"owner": "o", "code": c, "name": "new", "note": "set", "size": 9}
                                for c in ("c0000", "z")],
               conflict=("owner", "code"), update=("name", "note"), only_if_null="note")
    with Session(engine) as session:
        found = contents(session)
    assert found["c0000"] == ("n0", "kept", 0)
    assert found["z"] == ("new", "set", 0)


def test_sqlite_splits_a_batch_at_its_variable_limit(tmp_path: Any) -> None:
    """5 columns and a limit of 12 variables: two rows a statement, so 7 rows take four statements."""
    engine = create_engine(f"sqlite:///{tmp_path}/limit.db")
    statements: list[str] = []

    @event.listens_for(engine, "connect")
    def low_limit(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 12)

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT"):
            statements.append(statement)

    METADATA.create_all(engine)
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, rows(7), conflict=("owner", "code"), update=("name",))
    with Session(engine) as session:
        assert len(contents(session)) == 7
    assert [s.count("(?, ?, ?, ?, ?)") for s in statements] == [2, 2, 2, 1]
    engine.dispose()
