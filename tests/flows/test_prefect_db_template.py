"""The embedded server's first start in a new PREFECT_HOME keeps its migrated database as a template;
a later start in another new PREFECT_HOME starts from a copy of it and serves flow runs from it.

Each start runs in a child process, as `erphub run --engine prefect` does (EmbeddedServer exports
PREFECT_API_URL and stops its server at exit: neither may leak into the test process).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.prefect

# Start the server the way erphub.cli.runner does, run one flow against it, print the child's
# environment switches (what the server was told to skip).
_CHILD = """
import sys
from pathlib import Path
from erphub.flows.prefect_env import EmbeddedServer, configure_prefect_env
configure_prefect_env(Path(sys.argv[1]))
server = EmbeddedServer.start()
server.wait()
from prefect import flow

@flow(name="template-probe", persist_result=False)
def probe() -> int:
    return 7

assert probe() == 7
skipped = open(f"/proc/{server.pid}/environ", "rb").read().split(b"\\0")
print(sorted(v.decode() for v in skipped if v.startswith((b"PREFECT_API_DATABASE_MIGRATE_ON_START=",
                                                          b"PREFECT_API_BLOCKS_REGISTER_ON_START="))))
"""


def _start(state: Path, cache: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["XDG_CACHE_HOME"] = str(cache)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(state)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def test_a_new_prefect_home_starts_from_the_migrated_template(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _start(tmp_path / "first", cache)
    [template] = list((cache / "erphub").glob("prefect-*.db"))
    assert first == "[]"  # the first start migrated (and registered block types) itself
    assert _rows(template, "SELECT count(*) FROM flow_run") == [(0,)]  # kept before any run
    head = _rows(template, "SELECT version_num FROM alembic_version")

    second = _start(tmp_path / "second", cache)
    assert second == "['PREFECT_API_BLOCKS_REGISTER_ON_START=false', 'PREFECT_API_DATABASE_MIGRATE_ON_START=false']"
    db = tmp_path / "second" / "prefect" / "prefect.db"
    assert _rows(db, "SELECT version_num FROM alembic_version") == head
    [(block_types,)] = _rows(db, "SELECT count(*) FROM block_type")
    assert isinstance(block_types, int) and block_types > 0
    assert _rows(db, "SELECT state_type FROM flow_run") == [("COMPLETED",)]  # served from the copy
    assert db.stat().st_mode & 0o077 == 0  # it holds flow parameters: the owner's only
    assert _rows(template, "SELECT count(*) FROM flow_run") == [(0,)]  # the copy's runs stay in the copy

    third = _start(tmp_path / "second", cache)  # the same home again: its own database, already at head
    assert third == "['PREFECT_API_DATABASE_MIGRATE_ON_START=false']"
    assert _rows(db, "SELECT count(*) FROM flow_run") == [(2,)]
