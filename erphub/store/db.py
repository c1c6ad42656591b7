"""Engine creation and Alembic migration of the store (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event

from erphub.core.files import private_file
from erphub.core.records import CanonicalPayload, canonical_json

MIGRATIONS = Path(__file__).with_name("migrations")


def _dumps(value: Any) -> str:
    # Payloads carry Decimals and datetimes; store them as the same stable text we hash.
    if value.__class__ is CanonicalPayload:
        return value.canonical  # encoded once already, for its hash
    return canonical_json(value)


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": json.loads, "future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        database = engine.url.database
        db_file = Path(database) if database and database != ":memory:" else None
        if db_file is not None and not db_file.exists():
            _create_private(db_file)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets `erphub status` read while a run writes; foreign keys are not used.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
            if db_file is not None:  # the WAL and shared-memory files hold the same personal data
                for suffix in ("-wal", "-shm"):
                    private_file(Path(f"{db_file}{suffix}"))

    return engine


def _create_private(db_file: Path) -> None:
    """Create the SQLite file as 0600 before SQLite does (it would follow the umask: 0644)."""
    if not db_file.parent.is_dir():
        return  # SQLite reports the missing folder itself, as StoreError
    with contextlib.suppress(FileExistsError):
        os.close(os.open(db_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations are routine, not news
    config = _config()
    with engine.connect() as probe:
        if MigrationContext.configure(probe).get_current_revision() == _head():
            return  # the usual case: no lock taken (a reader such as `erphub status` never waits for one)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        driver: Any = connection.connection.driver_connection
        own_transactions = getattr(driver, "isolation_level", None)
        if sqlite:
            # pysqlite opens a transaction only before DML and runs each CREATE TABLE on its own: a
            # process killed mid-migration left tables without the alembic_version row that says they
            # exist, and the store never opened again. Our own BEGIN makes the migration all or nothing
            # (IMMEDIATE: two processes migrating at once take turns).
            driver.isolation_level = None
        try:
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        finally:
            if sqlite:
                driver.isolation_level = own_transactions  # pysqlite's own, for the store's sessions


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@functools.cache
def _head() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def to_utc(value: datetime | None) -> datetime | None:
    """Before storing: SQLite drops the offset without converting, so convert first."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
