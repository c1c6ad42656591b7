"""Contract harness for the sql connector on SQLite, plus the staging-table backends shared by the
PostgreSQL and MariaDB harnesses and the sql integration tests.

Each backend creates its own uniquely named table (PostgreSQL: in its own schema; MariaDB: in db
`test`, through a dedicated password user so the secret-leak check has a real secret) and drops it
afterwards. PostgreSQL and MariaDB are skipped when unreachable, except under CI=true.

Capabilities: none of expire_auth / lost_response / rate_limit: a database connection has no
session the server can expire mid-run that the connector would renew (the pool reconnects), the
suite has no proxy to drop a commit's answer, and the connector sets no client-side rate limit for
a database it is the only writer of. LOG_SECRETS is declared where the backend has a password.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import OperationalError

from erphub.connectors.base import Connector, SystemContext
from erphub.connectors.sql import SqlConnector, SqlSettings
from erphub.core.records import WriteRequest
from erphub.testing import EXPIRE_AUTH, LOG_SECRETS, LOST_RESPONSE, RATE_LIMIT

PG_ADMIN_URL = os.environ.get("ERPHUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("ERPHUB_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
MARIADB_USER = "erphub_contract"  # + a suffix per backend


def _skip_or_fail(message: str) -> None:
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{message} (required under CI=true)")
    import pytest

    pytest.skip(message)


def _table(name: str, metadata: MetaData, schema: str | None, *, tz: bool) -> Table:
    stamp = DateTime(timezone=tz).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("order_no", String(64), nullable=False, unique=True),
        Column("customer_code", String(32), nullable=False),
        Column("amount", Numeric(18, 2)),
        Column("lines", JSON),
        Column("status", String(16)),
        Column("error", Text),
        Column("updated_at", stamp, nullable=False),
        schema=schema,
    )


@dataclass
class SqlBackend:
    """One real database with one fresh staging table named `table`."""

    name: str
    url: str  # SQLAlchemy URL for the connector (no password in it)
    password: str | None
    schema: str | None
    table: Table
    engine: Engine  # admin connection for seeding and server-side truth
    json_columns: tuple[str, ...] = ()
    _next: list[int] = field(default_factory=lambda: [1])

    def settings(self, **entity_overrides: Any) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "table": self.table.name,
            "schema": self.schema,
            "key_column": "order_no",
            "status_column": "status",
            "error_column": "error",
            "json_columns": list(self.json_columns),
        }
        entity.update(entity_overrides)
        if entity.get("status_column") is None:
            entity.pop("error_column", None)
        out: dict[str, Any] = {"url": self.url, "entities": {"sales_order": entity}}
        if self.password:
            out["password"] = self.password
        return out

    def seed(
        self,
        stamps: Sequence[dt.datetime],
        *,
        status: str | None = None,
        start: int | None = None,
        customer: str = "CUS-SEED",
    ) -> list[str]:
        n = start if start is not None else self._next[0]
        rows = []
        tz = bool(getattr(self.table.c.updated_at.type, "timezone", False)) and self.name == "postgres"
        for stamp in stamps:
            value = stamp if tz else stamp.astimezone(dt.UTC).replace(tzinfo=None)
            rows.append(
                {
                    "order_no": f"SEED-{uuid.uuid4().hex[:12]}-{n}",
                    "customer_code": customer,
                    "amount": n,
                    "lines": [],
                    "status": status,
                    "updated_at": value,
                }
            )
            n += 1
        self._next[0] = max(self._next[0], n)
        ids: list[str] = []
        with self.engine.begin() as conn:
            for row in rows:  # one by one: ids in insertion order on every dialect
                result = conn.execute(insert(self.table).values(row))
                pk = result.inserted_primary_key
                assert pk is not None
                ids.append(str(pk[0]))
        return ids

    def count(self, key: str | None = None) -> int:
        query = select(func.count()).select_from(self.table)
        if key is not None:
            query = query.where(self.table.c.order_no == key)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def status_of(self, row_id: str) -> tuple[str | None, str | None]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(self.table.c.status, self.table.c.error).where(self.table.c.id == int(row_id))
            ).one()
        return row[0], row[1]


@contextmanager
def backend_fixture(name: str, tmp_path: Path | None = None) -> Iterator[SqlBackend]:
    """A fresh staging table on `sqlite`, `postgres` or `mariadb`, dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    if name == "sqlite":
        folder = tmp_path or Path(tempfile.mkdtemp(prefix="erphub-sql."))
        url = f"sqlite:///{folder / f'staging_{suffix}.db'}"
        engine = create_engine(url)
        table = _table(f"so_{suffix}", MetaData(), None, tz=False)
        table.create(engine)
        try:
            yield SqlBackend("sqlite", url, None, None, table, engine)
        finally:
            engine.dispose()
        return
    if name == "postgres":
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "erphub_{suffix}"'))
        except OperationalError as exc:
            engine.dispose()
            _skip_or_fail(f"PostgreSQL not reachable at 127.0.0.1:5432: {type(exc.orig).__name__}")
            return
        table = _table(f"so_{suffix}", MetaData(), f"erphub_{suffix}", tz=True)
        table.create(engine)
        try:
            # Trust auth ignores the password; it is still a configured secret for the leak check.
            yield SqlBackend("postgres", PG_ADMIN_URL, f"pg-secret-{suffix}", f"erphub_{suffix}", table, engine)
        finally:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "erphub_{suffix}" CASCADE'))
            engine.dispose()
        return
    if name == "mariadb":
        engine = create_engine(MARIADB_ADMIN_URL, connect_args={"connect_timeout": 3})
        password = f"mdb-secret-{suffix}"
        # A user of its own: two backends at once (pytest-xdist workers) must not reset each other's password.
        user = f"{MARIADB_USER}_{suffix}"
        try:
            with engine.begin() as conn:
                conn.execute(text(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'"))
                conn.execute(text(f"GRANT ALL ON test.* TO '{user}'@'127.0.0.1'"))
        except OperationalError as exc:
            engine.dispose()
            _skip_or_fail(f"MariaDB not reachable at 127.0.0.1:3306: {type(exc.orig).__name__}")
            return
        table = _table(f"erphub_so_{suffix}", MetaData(), None, tz=False)
        table.create(engine)
        try:
            # MariaDB's JSON is LONGTEXT with a check: reflection sees text, so name the column.
            yield SqlBackend(
                "mariadb",
                f"mysql+pymysql://{user}@127.0.0.1:3306/test",
                password,
                None,
                table,
                engine,
                json_columns=("lines",),
            )
        finally:
            table.drop(engine)
            with engine.begin() as conn:
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'"))
            engine.dispose()
        return
    raise ValueError(f"unknown sql backend {name!r}")


class SqlHarness:
    kind = "sql"
    entity = "sales_order"
    capability_reasons: ClassVar[dict[str, str]] = {
        LOST_RESPONSE: "losing the answer to a committed write needs a TCP proxy in front of the server; "
                       "writes are upserts by key, so a retry cannot duplicate",
        EXPIRE_AUTH: "a database connection has no session token to expire mid-run",
        RATE_LIMIT: "a staging table has no request rate to measure at the server",
        LOG_SECRETS: "SQLite has no password",
        "discovery": "a staging table has no custom fields beyond its columns; reflection on SQLite, PostgreSQL "
                     "and MariaDB is covered by tests/integration/test_discovery.py",
        "line_identity": "order lines are a JSON column written whole: there are no line ids to keep",
    }

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        self.capabilities = frozenset({LOG_SECRETS} if backend.password else set())
        self.secret_values: Sequence[str] = (backend.password,) if backend.password else ()

    def connector(self, *, rate_limit_per_second: float | None = None) -> Connector:
        settings = SqlSettings.model_validate(self.backend.settings(status_column=None))
        context = SystemContext(
            name=f"sql-{self.backend.name}",
            rate_limit_per_second=rate_limit_per_second,
            secrets=tuple(self.secret_values),
        )
        return SqlConnector(settings, context)

    def seed(self, count: int, *, updated_at: dt.datetime) -> list[str]:
        return self.backend.seed([updated_at] * count)

    def write_request(self, n: int, *, key: str, target_id: str | None = None) -> WriteRequest:
        data = {"order_no": key, "customer_code": f"CUS-{n:04d}", "amount": n, "lines": [{"sku": "1.01.001", "qty": n}]}
        return WriteRequest(source_id=f"src-{n}", key=key, target_id=target_id, data=data, idempotency_key=f"{key}:{n}")

    def bad_write_request(self, n: int, *, key: str) -> WriteRequest:
        data = {"order_no": key, "customer_code": None, "amount": n}  # NOT NULL violated
        return WriteRequest(source_id=f"src-{n}", key=key, target_id=None, data=data, idempotency_key=f"{key}:{n}:bad")

    def count_with_key(self, key: str) -> int:
        return self.backend.count(key)

    def expire_auth(self) -> None:
        raise RuntimeError("unsupported: a database connection has no session to expire")

    def lose_next_write_response(self) -> None:
        raise RuntimeError("unsupported: no proxy in front of the database to drop a commit's answer")

    def request_times(self) -> list[float]:
        raise RuntimeError("unsupported: the database does not log request arrival times")

    def page_size_hint(self) -> int:
        return 3

    def extra(self) -> dict[str, Any]:
        return {"backend": self.backend.name}


@contextmanager
def harness_for(name: str) -> Iterator[SqlHarness]:
    with backend_fixture(name) as backend:
        yield SqlHarness(backend)


@contextmanager
def make_harness() -> Iterator[SqlHarness]:
    with harness_for("sqlite") as harness:
        yield harness
