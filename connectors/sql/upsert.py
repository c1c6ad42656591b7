"""Insert-or-update by a unique key, in each dialect's own words.

PostgreSQL and SQLite: `INSERT ... ON CONFLICT (key) DO UPDATE`; MariaDB/MySQL:
`INSERT ... ON DUPLICATE KEY UPDATE`. Each needs a unique index or primary key on the key column,
which is also what makes a retried write land on the same row instead of a duplicate. Other
dialects get a portable update-then-insert inside the caller's savepoint.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, insert, update
from sqlalchemy.dialects import mysql, postgresql, sqlite


def upsert(conn: Connection, table: Table, key_column: str, row: dict[str, Any]) -> None:
    """Write `row` (which includes the key column) as one statement where the dialect allows."""
    updates = {name: value for name, value in row.items() if name != key_column}
    name = conn.dialect.name
    if name == "postgresql":
        pg = postgresql.insert(table).values(row)
        conn.execute(pg.on_conflict_do_update(index_elements=[key_column], set_=updates) if updates
                     else pg.on_conflict_do_nothing(index_elements=[key_column]))
    elif name == "sqlite":
        lite = sqlite.insert(table).values(row)
        conn.execute(lite.on_conflict_do_update(index_elements=[key_column], set_=updates) if updates
                     else lite.on_conflict_do_nothing(index_elements=[key_column]))
    elif name in ("mysql", "mariadb"):
        my = mysql.insert(table).values(row)
        # A no-op update keeps "insert or leave alone" when only the key is given.
        conn.execute(my.on_duplicate_key_update(updates or {key_column: my.inserted[key_column]}))
    else:
        done = conn.execute(update(table).where(table.c[key_column] == row[key_column]).values(updates))
        if done.rowcount == 0:
            conn.execute(insert(table).values(row))
