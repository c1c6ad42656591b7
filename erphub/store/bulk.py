"""Bulk statements of a batch: one `INSERT … ON CONFLICT` for many rows (SQLite and PostgreSQL alike).

The statement is compiled once per table, column set and conflict rule. On PostgreSQL a batch is one
DBAPI executemany of it (psycopg pipelines the rows): one round trip, not one per row. On SQLite a
batch is a few statements with a row of VALUES per record: sqlite3 releases the GIL around each
step, and executemany steps once per row, so in a run whose writer threads kept the GIL busy each
row waited for it again. Measured (py-spy, the 20,000-record bench): the committing thread spent
2.04 s in the links' executemany, 1.26 s with multi-row statements. The statements hold a power of
two of rows, at most MULTIROW_MAX (and what SQLite's variable limit allows): sqlite3 keeps each
distinct statement text prepared (128 per connection), and one text per batch size held 189 MB
after 200 sizes of about 1,000 rows (measured); powers of two make at most 10 texts a shape.

Values go through each column type's own bind processor (the store's JSON serializer, SQLite's datetime
text), as SQLAlchemy itself would apply them, but without its per-row parameter machinery, which cost
more than the rows (bench (c)); a value shared by every row (the batch's `now`) is converted once.
PostgreSQL refuses to update one row twice in one statement, so rows are de-duplicated by their conflict
key first (the last one wins, as the row-by-row code did).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert


def upsert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, conflict: Sequence[str],
           update: Sequence[str], keep_when_null: Sequence[str] = ()) -> None:
    """Insert *rows* (all with the same keys); a row whose *conflict* columns exist already has its
    *update* columns set instead.

    Columns in *keep_when_null* keep the stored value when the new one is NULL.
    """
    if not rows:
        return
    key = itemgetter(*conflict)
    unique = list({key(row): row for row in rows}.values())
    connection = session.connection()
    shape = _compiled(connection.dialect, table, tuple(unique[0]), tuple(conflict), tuple(update),
                      tuple(keep_when_null))
    parameters = shape.parameters(unique)
    if shape.values_row is None:
        connection.exec_driver_sql(shape.sql, parameters)
        return
    start = 0
    for count in statement_sizes(len(parameters), _largest_statement(connection, len(shape.columns))):
        group = parameters[start:start + count]
        start += count
        connection.exec_driver_sql(_multirow_sql(shape.sql, shape.values_row, count),
                                   tuple(value for row in group for value in row))


MULTIROW_MAX = 512  # rows in one SQLite statement (a power of two)
# SQLite's default before 3.32 (sqlite.org/limits.html #9; 32,766 since), for a DBAPI driver other
# than the standard sqlite3 module, which says its own.
_SQLITE_OLD_VARIABLE_LIMIT = 999


def _largest_statement(connection: Connection, width: int) -> int:
    """The most rows of `width` values one statement may take: a power of two within MULTIROW_MAX and
    the connection's SQLITE_LIMIT_VARIABLE_NUMBER."""
    getlimit = getattr(connection.connection.driver_connection, "getlimit", None)
    limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit is not None else _SQLITE_OLD_VARIABLE_LIMIT
    fits = max(1, min(MULTIROW_MAX, limit // width))
    return 1 << (fits.bit_length() - 1)


def statement_sizes(rows: int, largest: int) -> list[int]:
    """`rows` cut into statements of `largest` rows, the rest in falling powers of two (13 -> 8, 4, 1)."""
    sizes = [largest] * (rows // largest)
    rest = rows % largest
    while rest:
        part = 1 << (rest.bit_length() - 1)
        sizes.append(part)
        rest -= part
    return sizes


@lru_cache(maxsize=128)
def _multirow_sql(sql: str, values_row: str, count: int) -> str:
    """The one-row INSERT `sql` with `count` rows of VALUES (each `values_row`, as `sql` has it once)."""
    head, marker, tail = sql.partition(" VALUES " + values_row)
    return head + marker + (", " + values_row) * (count - 1) + tail


@dataclass(frozen=True)
class _Shape:
    sql: str
    columns: tuple[str, ...]  # in the statement's parameter order
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool
    # "(?, ?, ...)" when a batch goes as statements of many VALUES rows (SQLite, and the one-row
    # statement holds that group once); None for an executemany (PostgreSQL).
    values_row: str | None

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        converted: list[list[Any]] = []
        for name, process in zip(self.columns, self.processors, strict=True):
            values = [row[name] for row in rows]
            if process is not None:
                first = values[0]
                if all(v is first for v in values):  # one object in every row: convert it once
                    values = [process(first)] * len(values)
                else:
                    values = [process(v) for v in values]
            converted.append(values)
        if self.positional:
            return list(zip(*converted, strict=True))
        return [dict(zip(self.columns, values, strict=True)) for values in zip(*converted, strict=True)]


@lru_cache(maxsize=32)
def _compiled(dialect: Dialect, table: Table, columns: tuple[str, ...], conflict: tuple[str, ...],
              update: tuple[str, ...], keep_when_null: tuple[str, ...]) -> _Shape:
    statement = _statement(dialect.name, table, conflict, update, keep_when_null)
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup) if compiled.positiontup else tuple(compiled.binds)
    if set(order) != set(columns):
        raise AssertionError(f"the upsert of {table.name} binds {order}, not its columns {columns}")
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order)
    values_row = "(" + ", ".join("?" * len(order)) + ")"
    multirow = dialect.name == "sqlite" and compiled.string.count(" VALUES " + values_row) == 1
    return _Shape(compiled.string, order, processors, positional=bool(compiled.positional),
                  values_row=values_row if multirow else None)


def _statement(dialect: str, table: Table, conflict: tuple[str, ...], update: tuple[str, ...],
               keep_when_null: tuple[str, ...]) -> Insert:
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"the store runs on SQLite or PostgreSQL, not {dialect}")
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    values: dict[str, Any] = {
        name: func.coalesce(stmt.excluded[name], table.c[name]) if name in keep_when_null else stmt.excluded[name]
        for name in update
    }
    return stmt.on_conflict_do_update(index_elements=list(conflict), set_=values)
