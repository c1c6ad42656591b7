"""A pre-migrated Prefect database for the embedded server's fresh PREFECT_HOME.

Prefect's server runs all its Alembic migrations on SQLite when its database is new: measured here,
10-18 s of the embedded server's start, on every first run in a state folder (every bench and test
run). The migrated, still empty database (schema, block types) depends only on the Prefect version:
it is built once per version, kept in the user's cache folder, and copied into a new PREFECT_HOME.
A database that exists is never touched (Prefect migrates it itself), nor one at a configured URL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path

from erphub.core.files import private_dir, private_file

DB_NAME = "prefect.db"  # Prefect's default database file in PREFECT_HOME


def template_path(prefect_version: str) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "erphub" / f"prefect-{prefect_version}.db"


def default_db(home: Path, connection_url: str) -> Path | None:
    """PREFECT_HOME's own database file, or None when Prefect is pointed at another database."""
    db = home / DB_NAME
    return db if connection_url == f"sqlite+aiosqlite:///{db}" else None


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's backup API (consistent while Prefect has the source open), into a temporary file
    beside the target, then renamed: a concurrent run sees the whole file or none."""
    private_dir(target.parent)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(temporary)) as dst:
            src.backup(dst)
        private_file(Path(temporary))  # Prefect's database later holds flow parameters
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def seed(db: Path, template: Path) -> bool:
    """Copy the template into place when the database is new and a template exists; True if copied."""
    if db.exists() or not template.exists():
        return False
    try:
        _copy_sqlite(template, db)
    except (OSError, sqlite3.Error):
        return False  # Prefect then migrates a new database itself, as without a template
    return True


def same_schema(db: Path, template: Path) -> bool:
    """Whether an existing database is at the template's Alembic revision (the installed Prefect's
    newest): Prefect's migration check on start would then do nothing but cost its time."""
    def revision(path: Path) -> set[str] | None:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                return {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        except (OSError, sqlite3.Error):
            return None
    ours = revision(db) if db.exists() and template.exists() else None
    return ours is not None and ours == revision(template)


def keep_as_template(db: Path, template: Path) -> None:
    """Keep a database Prefect has just created and migrated (no run in it yet) as the template."""
    if template.exists() or not db.exists():
        return
    with contextlib.suppress(OSError, sqlite3.Error):  # without a template the next start only migrates
        _copy_sqlite(db, template)
