"""The SQL connector deletes staging rows for `on_delete: delete` and fetches rows by id (SQLite)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from erphub.connectors.base import SystemContext
from erphub.connectors.sql.connector import SqlConnector
from erphub.connectors.sql.settings import SqlSettings


def test_delete_removes_rows_and_fetch_no_longer_finds_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/staging.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, code TEXT UNIQUE NOT NULL, "
                             "name TEXT, updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO customers (id, code, name) VALUES (1, 'C1', 'a'), (2, 'C2', 'b')"))
    engine.dispose()
    settings = SqlSettings.model_validate({"url": url, "entities": {"customer": {
        "table": "customers", "key_column": "code", "id_column": "id", "cursor_column": "updated_at"}}})
    connector = SqlConnector(settings, SystemContext(name="staging"))
    try:
        assert sorted(connector.fetch("customer", ["1", "2", "3", "x"])) == ["1", "2"]
        assert connector.delete_modes("customer") == frozenset({"delete"})
        results = connector.delete("customer", ["2", "9"], mode="delete")
        assert [r.ok for r in results] == [True, True]
        assert sorted(connector.fetch("customer", ["1", "2"])) == ["1"]
    finally:
        connector.close()
