"""A Prefect database migrated once per test session, for tests whose Prefect server's first start is not
what they test.

A Prefect server migrates its database on every start (`PREFECT_API_DATABASE_MIGRATE_ON_START`); on a
new SQLite file that is Prefect's whole Alembic history, 10-17 s of a 20-30 s start here. A test that
copies this template into its PREFECT_HOME starts a server whose migration finds the database at head,
as a user's second `erphub serve` does. First starts on an empty home stay covered: test_alerts_live's
`erphub serve` and test_wheel's `erphub demo` start from nothing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

TEMPLATE_NAME = "prefect-template.db"
_MIGRATE = ("import asyncio\n"
            "from prefect.server.database import provide_database_interface\n"
            "asyncio.run(provide_database_interface().create_db())\n")


def migrated_prefect_db(folder: Path) -> Path:
    """`folder`/prefect-template.db, migrated to head by this venv's Prefect; built once, under a lock
    (pytest-xdist workers share the folder)."""
    template = folder / TEMPLATE_NAME
    with open(folder / f"{TEMPLATE_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if template.exists():
            return template
        with tempfile.TemporaryDirectory(dir=folder) as work:
            built = Path(work) / "prefect.db"
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env |= {"PREFECT_HOME": work, "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{built}"}
            done = subprocess.run([sys.executable, "-c", _MIGRATE], env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"migrating the Prefect template failed:\n{done.stderr[-3000:]}")
            # One self-contained file (no -wal beside it), written under a temporary name first.
            partial = folder / f"{TEMPLATE_NAME}.partial"
            partial.unlink(missing_ok=True)
            with sqlite3.connect(built) as conn:
                conn.execute("VACUUM INTO ?", (str(partial),))
            conn.close()
            partial.rename(template)
    return template


def seed_prefect_home(home: Path, template: Path) -> Path:
    """Put a copy of the template where a Prefect server with PREFECT_HOME=`home` keeps its database."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(template, home / "prefect.db")
    return home
