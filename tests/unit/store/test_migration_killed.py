"""A process killed in the middle of the store's first migration leaves a store that opens.

pysqlite commits each CREATE TABLE by itself (it opens transactions only for DML), so a kill between
two statements of a migration left tables without the alembic_version row that says they exist, and
every later start failed with "table ... already exists" (a CI run of test_crash_safety.py killed a
run during its start-up and hit exactly that). The migration must be all or nothing.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from erphub.store import Store

# Dies (as SIGKILL would: no cleanup, no rollback) at the Nth CREATE TABLE of the migration.
DIE_AT_CREATE = """
import os, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
from erphub.store import Store

creates = [0]

@event.listens_for(Engine, "before_cursor_execute")
def die(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("CREATE TABLE"):
        creates[0] += 1
        if creates[0] == int(sys.argv[2]):
            os._exit(9)

Store(sys.argv[1])
"""


@pytest.mark.parametrize("die_at", [2, 5])
def test_a_store_killed_mid_migration_opens_and_is_complete(tmp_path: Path, die_at: int) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    killed = subprocess.run([sys.executable, "-c", DIE_AT_CREATE, url, str(die_at)], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr[-2000:]

    store = Store(url)  # raised StoreError "table ... already exists" before the fix
    try:
        fresh = Store(f"sqlite:///{tmp_path}/fresh.db")
        try:
            expected = set(inspect(fresh.engine).get_table_names())
        finally:
            fresh.close()
        assert set(inspect(store.engine).get_table_names()) == expected
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:  # committed, as the store's own sessions see it
        assert db.execute("select count(*) from alembic_version").fetchone() == (1,)


def test_the_store_sessions_after_a_migration_keep_their_transactions(tmp_path: Path) -> None:
    """The migration's connection goes back to the pool: its sessions must not be left autocommitting."""
    store = Store(f"sqlite:///{tmp_path}/state.db")
    try:
        with store.engine.connect() as connection:
            assert connection.connection.driver_connection.isolation_level == ""
    finally:
        store.close()
