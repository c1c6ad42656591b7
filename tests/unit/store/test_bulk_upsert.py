"""erphub.store.bulk.upsert: on SQLite, statements of many VALUES rows (powers of two, within SQLite's
variable limit); the same rows and the same conflict rules as the executemany it replaced, on both
databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from erphub.store import Store
from erphub.store.bulk import MULTIROW_MAX, statement_sizes, upsert
from erphub.store.models import BatchCommit, LinkUpdate

METADATA = MetaData()
ITEMS = Table(
    "bulk_items", METADATA,
    Column("owner", String(20), primary_key=True),
    Column("code", String(20), primary_key=True),
    Column("name", String(50)),
    Column("note", String(50)),
    Column("size", Integer),
)
KEY = ("owner", "code")


def rows(count: int, *, name: str = "n", note: str | None = "kept") -> list[dict[str, Any]]:
    return [{"owner": "o", "code": f"c{i:04d}", "name": f"{name}{i}", "note": note, "size": i} for i in range(count)]


def contents(session: Session) -> dict[str, tuple[Any, ...]]:
    return {row.code: (row.name, row.note, row.size) for row in session.execute(select(ITEMS))}


def inserts_seen(engine: Engine) -> list[str]:
    """The INSERT statements `engine` sends from now on, as their SQL text."""
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT"):
            seen.append(statement)
    return seen


@pytest.fixture
def engine(store: Store) -> Iterator[Engine]:
    """The store's own engine (SQLite and PostgreSQL), with the test's table beside the store's."""
    METADATA.create_all(store.engine)
    yield store.engine
    METADATA.drop_all(store.engine)


def test_inserts_then_updates_with_the_conflict_rules(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, rows(250), conflict=KEY, update=("name", "note", "size"), keep_when_null=("note",))
    changed = rows(300, name="m", note=None)
    changed.append({**changed[0], "name": "last wins"})  # a key twice in one batch: the last row counts
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, changed, conflict=KEY, update=("name", "note", "size"), keep_when_null=("note",))
    with Session(engine) as session:
        found = contents(session)
    assert len(found) == 300
    assert found["c0000"] == ("last wins", "kept", 0)
    assert found["c0249"] == ("m249", "kept", 249)   # NULL kept the stored note
    assert found["c0250"] == ("m250", None, 250)     # new rows take the NULL


def test_sqlite_splits_a_batch_at_its_variable_limit(tmp_path: Path) -> None:
    """5 columns and a limit of 12 variables: two rows a statement. Every row lands once, and the
    conflict rules hold for rows on both sides of a statement boundary."""
    engine = create_engine(f"sqlite:///{tmp_path}/limit.db")

    @event.listens_for(engine, "connect")
    def low_limit(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 12)

    METADATA.create_all(engine)
    statements = inserts_seen(engine)
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, rows(7)[::2], conflict=KEY, update=("name",))  # c0000, c0002, c0004, c0006
    with Session(engine) as session, session.begin():
        upsert(session, ITEMS, rows(7, name="m", note=None), conflict=KEY, update=("name", "note"),
               keep_when_null=("note",))
    assert [s.count("(?, ?, ?, ?, ?)") for s in statements] == [2, 2, 2, 2, 2, 1]
    with Session(engine) as session:
        assert contents(session) == {f"c{i:04d}": (f"m{i}", "kept" if i % 2 == 0 else None, i) for i in range(7)}
    engine.dispose()


def test_a_shape_has_a_few_statement_texts_whatever_the_batch_sizes(tmp_path: Path) -> None:
    """sqlite3 keeps every distinct statement text prepared: one per batch size held 189 MB after 200
    sizes of about 1,000 rows. Sizes 1 to 1,100 here: at most one text per power of two."""
    engine = create_engine(f"sqlite:///{tmp_path}/texts.db")
    METADATA.create_all(engine)
    statements = inserts_seen(engine)
    for count in [*range(1, 40), 100, 255, 511, 777, 1000, 1100]:
        with Session(engine) as session, session.begin():
            upsert(session, ITEMS, rows(count), conflict=KEY, update=("name",))
    assert len(set(statements)) <= MULTIROW_MAX.bit_length()
    with Session(engine) as session:
        assert len(contents(session)) == 1100
    engine.dispose()


@pytest.mark.parametrize("rows_count", [1, 2, 13, 100, 512, 1000, 2047])
def test_statement_sizes_are_powers_of_two_that_add_up(rows_count: int) -> None:
    sizes = statement_sizes(rows_count, 512)
    assert sum(sizes) == rows_count
    assert all(size & (size - 1) == 0 and size <= 512 for size in sizes)
    assert sizes == sorted(sizes, reverse=True)


def test_the_stores_own_upserts_go_as_multirow_statements(sqlite_store: Store) -> None:
    """A shape SQLAlchemy renders otherwise (a default in VALUES) would fall back to executemany unseen."""
    statements = inserts_seen(sqlite_store.engine)
    links = [LinkUpdate(f"s{i}", f"t{i}", f"k{i}", "h", {"n": i}) for i in range(4)]
    sqlite_store.commit_batch(BatchCommit("p", "r", links=links), ("crm", "customer", "erp", "customer"))
    links = [s for s in statements if "erphub_links" in s]
    assert len(links) == 1 and links[0].count("), (") == 3
