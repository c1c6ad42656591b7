"""Bulk statements of a batch: one `INSERT … ON CONFLICT` for many rows (SQLite and PostgreSQL alike).

SQLAlchemy sends a list of parameter sets as one multi-row statement ("insertmanyvalues"), so a
batch's links cost one round trip, not one per row. PostgreSQL refuses to update one row twice
in one statement, so rows are de-duplicated by their conflict key first (the last one wins, as
the row-by-row code did).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert


def upsert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, conflict: Sequence[str],
           update: Sequence[str], keep_when_null: Sequence[str] = (), only_if_null: str | None = None) -> None:
    """Insert *rows*; a row whose *conflict* columns exist already has its *update* columns set instead.

    Columns in *keep_when_null* keep the stored value when the new one is NULL; with *only_if_null*,
    only existing rows whose that column is NULL are updated at all.
    """
    if not rows:
        return
    unique = list({tuple(row[c] for c in conflict): row for row in rows}.values())
    dialect = session.get_bind().dialect.name
    statement = _statement(dialect, table, tuple(conflict), tuple(update), tuple(keep_when_null), only_if_null)
    session.execute(statement, unique)


@lru_cache(maxsize=32)
def _statement(dialect: str, table: Table, conflict: tuple[str, ...], update: tuple[str, ...],
               keep_when_null: tuple[str, ...], only_if_null: str | None) -> Insert:
    """Built once per shape: `insert().excluded` makes a new alias of the table (a Column object per
    column) every time, which cost more than the rows themselves."""
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"the store runs on SQLite or PostgreSQL, not {dialect}")
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    values: dict[str, Any] = {
        name: func.coalesce(stmt.excluded[name], table.c[name]) if name in keep_when_null else stmt.excluded[name]
        for name in update
    }
    where = table.c[only_if_null].is_(None) if only_if_null is not None else None
    return stmt.on_conflict_do_update(index_elements=list(conflict), set_=values, where=where)
