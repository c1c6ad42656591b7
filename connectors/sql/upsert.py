"""Insert-or-update by a unique key, in each dialect's own words, a batch at a time.

PostgreSQL and SQLite: `INSERT ... ON CONFLICT (key) DO UPDATE SET c = excluded.c`; MariaDB/MySQL:
`INSERT ... ON DUPLICATE KEY UPDATE c = VALUES(c)`. Each needs a unique index or primary key on the
key column, which is also what makes a retried write land on the same row instead of a duplicate.

`Upserts` builds one statement per set of columns and keeps it, so a batch is one executemany of
an already compiled statement: PyMySQL rewrites it into one multi-row `INSERT ... VALUES (...), (...)`
(pymysql.cursors.Cursor.executemany), sqlite3 steps one prepared statement. PostgreSQL gets the
whole batch as one JSON parameter (`json_batch.py`) where every value and column has a plain text
form, else the compiled statement. Other dialects get a portable update-then-insert, row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Executable, Table, insert, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from erphub.connectors.sql.json_batch import JsonBatchUpserts, NotPlain

BULK_DIALECTS = frozenset({"postgresql", "sqlite", "mysql", "mariadb"})


class Upserts:
    """The upsert statements of one table, one per column set, built once and reused."""

    def __init__(self, table: Table, key_column: str) -> None:
        self.table = table
        self.key_column = key_column
        self._statements: dict[tuple[str, tuple[str, ...]], Executable] = {}
        self._returning: dict[tuple[str, tuple[str, ...], str], Executable] = {}
        self._unnest = JsonBatchUpserts(table, key_column)

    def statement(self, dialect: str, columns: tuple[str, ...]) -> Executable:
        cached = self._statements.get((dialect, columns))
        if cached is None:
            cached = self._statements[(dialect, columns)] = self._build(dialect, columns)
        return cached

    def _build(self, dialect: str, columns: tuple[str, ...]) -> Executable:
        others = [c for c in columns if c != self.key_column]
        if dialect in ("postgresql", "sqlite"):
            lite = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(self.table)
            if not others:
                return lite.on_conflict_do_nothing(index_elements=[self.key_column])
            return lite.on_conflict_do_update(index_elements=[self.key_column],
                                              set_={c: lite.excluded[c] for c in others})
        my = mysql.insert(self.table)
        # A no-op update keeps "insert or leave alone" when only the key is given.
        return my.on_duplicate_key_update({c: my.inserted[c] for c in others or [self.key_column]})

    def write_many(self, conn: Connection, rows: Sequence[dict[str, Any]],
                   returning: str | None = None) -> dict[Any, Any] | None:
        """Upsert `rows` (each with the key column): one executemany per run of rows with the same
        columns, runs in batch order, so a key given twice ends as its last row says.

        With `returning` (the id column) on PostgreSQL and SQLite: the ids of the rows written, by key,
        from `RETURNING` (SQLAlchemy sends such an executemany as multi-row INSERT ... VALUES
        statements), so no query has to find them afterwards. None where the dialect cannot say."""
        dialect = conn.dialect.name
        if dialect not in BULK_DIALECTS:
            for row in rows:
                self.write_one(conn, row)
            return None
        runs: list[tuple[tuple[str, ...], list[dict[str, Any]]]] = []
        for row in rows:
            columns = tuple(sorted(row))
            if runs and runs[-1][0] == columns:
                runs[-1][1].append(row)
            else:
                runs.append((columns, [row]))
        ids: dict[Any, Any] | None = {} if returning and dialect in ("postgresql", "sqlite") else None
        key = self.table.c[self.key_column]
        for columns, run in runs:
            if dialect == "postgresql" and self._unnest.usable(columns):
                try:
                    found = self._unnest.write(conn, columns, run, returning)
                except NotPlain:
                    pass  # a value with no plain text form: the generic statement below
                else:
                    if ids is not None:
                        ids.update(found)
                    continue
            statement = self.statement(dialect, columns)
            if ids is None or returning is None:
                conn.execute(statement, run)
                continue
            returned = self._returning.get((dialect, columns, returning))
            if returned is None:  # kept like the statement itself: built and cache-keyed once
                returned = statement.returning(key, self.table.c[returning])  # type: ignore[attr-defined]
                self._returning[(dialect, columns, returning)] = returned
            ids.update((k, row_id) for k, row_id in conn.execute(returned, run))
        return ids

    def write_one(self, conn: Connection, row: dict[str, Any]) -> None:
        dialect = conn.dialect.name
        if dialect in BULK_DIALECTS:
            conn.execute(self.statement(dialect, tuple(sorted(row))), [row])
            return
        updates = {name: value for name, value in row.items() if name != self.key_column}
        done = conn.execute(update(self.table).where(self.table.c[self.key_column] == row[self.key_column])
                            .values(updates))
        if done.rowcount == 0:
            conn.execute(insert(self.table).values(row))
