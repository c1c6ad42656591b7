"""Shared fixtures: stores on SQLite and on the local PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from erphub.store import Store
from tests.prefect_template import migrated_prefect_db

IN_CI = os.environ.get("CI") == "true"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("ERPHUB_TEST_POSTGRES_URL", DEFAULT_PG)


def postgres_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """What a PostgreSQL database itself holds, read through a connection of its own."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def _postgres_reachable(url: str) -> str | None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return None
    except Exception as exc:
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; required under CI=true."""
    import sqlalchemy

    admin_url = postgres_admin_url()
    problem = _postgres_reachable(admin_url)
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but unreachable at {admin_url}: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    name = f"erphub_test_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def _fresh_schema(base: str) -> Iterator[str]:
    """An empty schema of the test database, and a URL whose connections use it (search_path)."""
    import sqlalchemy

    schema_db = f"s{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema_db}"')
    try:
        yield f"{base}?options=-csearch_path%3D{schema_db}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema_db}" CASCADE')
        admin.dispose()


@pytest.fixture(scope="session")
def prefect_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated Prefect database to copy into a test's PREFECT_HOME (tests/prefect_template.py)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's folder, shared by its workers: the template is built once
    return migrated_prefect_db(base)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The store on SQLite and on PostgreSQL: every store-touching test runs on both."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store')}/erphub.db"
        s = Store(url)
        yield s
        s.close()
        return
    with _fresh_schema(request.getfixturevalue("postgres_database")) as url:
        s = Store(url)
        yield s
        s.close()


@pytest.fixture
def postgres_schema(postgres_database: str) -> Iterator[str]:
    """The URL of an empty PostgreSQL schema: a store nobody has migrated yet."""
    with _fresh_schema(postgres_database) as url:
        yield url


@pytest.fixture
def migrated_postgres(postgres_schema: str) -> str:
    """The URL of a PostgreSQL store brought to the newest migration, as opening the store does."""
    Store(postgres_schema).close()
    return postgres_schema


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/erphub.db")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _metrics_mode_is_per_test() -> Iterator[None]:
    """An in-process CLI call switches prometheus-client to multiprocess mode for the whole process
    (`monitoring.multiprocess.enable`); put memory mode back so later tests read their own counters."""
    from prometheus_client import values

    from erphub.monitoring import multiprocess

    env, value_class = os.environ.get(multiprocess.ENV), values.ValueClass
    yield
    values.ValueClass = value_class
    if env is None:
        os.environ.pop(multiprocess.ENV, None)
    else:
        os.environ[multiprocess.ENV] = env
