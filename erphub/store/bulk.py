"""Bulk statements of a batch: one `INSERT … ON CONFLICT` for many rows (SQLite and PostgreSQL alike).

SQLAlchemy sends a list of parameter sets as one multi-row statement ("insertmanyvalues"), so a
batch's links cost one round trip, not one per row. PostgreSQL refuses to update one row twice
in one statement, so rows are de-duplicated by their conflict key first (the last one wins, as
the row-by-row code did).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, conflict: Sequence[str],
           update: Sequence[str], keep_when_null: Sequence[str] = (),
           only_if: ColumnElement[bool] | None = None) -> None:
    """Insert *rows*; a row whose *conflict* columns exist already has its *update* columns set instead.

    Columns in *keep_when_null* keep the stored value when the new one is NULL; *only_if* (a condition
    on the stored row) limits which existing rows are updated at all.
    """
    if not rows:
        return
    unique = list({tuple(row[c] for c in conflict): row for row in rows}.values())
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"the store runs on SQLite or PostgreSQL, not {dialect}")
    stmt = insert(table)
    values: dict[str, Any] = {
        name: func.coalesce(stmt.excluded[name], table.c[name]) if name in keep_when_null else stmt.excluded[name]
        for name in update
    }
    session.execute(stmt.on_conflict_do_update(index_elements=list(conflict), set_=values, where=only_if),
                    unique)
