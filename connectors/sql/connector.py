"""SQL staging tables (中间表) through SQLAlchemy 2 (sync engines).

Each entity is one table named in the settings; its columns are found by reflection, so the
entity's fields are exactly the table's columns and a record's `data` is the row as a dict.

Reading: rows changed strictly after the cursor, in (cursor column, id column) order, paged by
keyset: `WHERE (c > :t OR (c = :t AND id > :i)) ORDER BY c, id LIMIT n`, the next page starting
after the last row of the previous one, so rows sharing a timestamp across a page boundary are
neither lost nor repeated. Naive timestamps are taken as UTC. Rows whose cursor column is NULL
are never read: declare it NOT NULL with a default. The cursor column is the only change time
a staging table has: the producer must set it on every change of the row, a change of state
included (an ON UPDATE clause or a trigger); where it does not, use the handshake (below), which
reads by status and needs no timestamp. The entity's description says which of the two it is.

Commit order: a producer's row carries the time its transaction stamped it (PostgreSQL's now() and
CURRENT_TIMESTAMP are the transaction's start, postgresql.org/docs/current/functions-datetime.html),
so a transaction that began before rows the hub has read and commits after them lands behind the
cursor. The engine's overlap window re-reads `read_lag_s` = 60 s behind the cursor on every run
(raise the pipeline's `lag_seconds` above the producer's longest transaction): a row committed
late within the window is read on the next run; rows already delivered count as unchanged.

Writing: upsert by the key column (unique index required): PostgreSQL and SQLite
`ON CONFLICT DO UPDATE`, MariaDB `ON DUPLICATE KEY UPDATE`. A batch is one transaction: the ids
by key before, the whole batch as one statement inside a SAVEPOINT (PostgreSQL: one JSON parameter;
the others: one executemany of a statement compiled once per table and column set; see `upsert.py`),
the ids by key after. Only when that fails is the savepoint rolled back and the batch written again
row by row, each row in its own SAVEPOINT, so a bad row (constraint, type, length) fails alone and
the rest of the batch commits; a retried write lands on the same row. The cursor column is set to
now (UTC) unless the data gives it, and the status column (if any) to `status_new`.

Child lines: a sales order's lines go in a JSON column (e.g. `lines`): JSON-typed columns are
found by reflection, text columns holding JSON are listed in `json_columns`. Values are decoded
on read and encoded on write (Decimals as strings), so the record shape matches the CRM's
sub-form lists without a second table.

Handshake: with `status_column`, the status is the protocol: every read returns every row in
`status_new`, whatever its cursor value (the cursor only pages within one read), so a row committed
late is never passed over and never stays `new` for ever; after the engine has
committed a batch it calls `acknowledge(entity, ids, ok=..., error=...)` to mark them
`status_done` / `status_error` (with the reason in `error_column`). Acknowledging never touches
the cursor column, so it cannot make a row look changed again.

Fetch and delete by id: `SELECT`/`DELETE ... WHERE id IN (...)`, 500 ids at a time. `on_delete: delete`
deletes the staging row; a table has no standard "inactive" column, so `deactivate` is not offered.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Engine,
    MetaData,
    Table,
    and_,
    any_,
    bindparam,
    create_engine,
    delete,
    event,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, NoSuchTableError, SQLAlchemyError

from erphub.connectors.base import ConnectorBase, ConnectorSettings, SystemContext
from erphub.connectors.discovery import field_info
from erphub.connectors.sql.settings import SqlEntitySettings, SqlSettings
from erphub.connectors.sql.types import generic_kind
from erphub.connectors.sql.upsert import Upserts
from erphub.core.errors import ConfigError, PermanentError, TransientError, UnknownEntity
from erphub.core.records import (
    Cursor,
    Direction,
    EntitySpec,
    Page,
    Record,
    RecordError,
    WriteAction,
    WriteRequest,
    WriteResult,
)

# The engine bounds `until` with this id to mean "every id at that timestamp".
_ID_MAX = "\uffff"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class _Table:
    """A reflected table plus what the settings say about it."""

    def __init__(self, name: str, cfg: SqlEntitySettings, table: Table) -> None:
        self.name = name
        self.cfg = cfg
        self.table = table
        missing = [c for c in (cfg.key_column, cfg.id_column, cfg.cursor_column, cfg.status_column,
                               cfg.error_column) if c and c not in table.c]
        if missing:
            raise ConfigError(f"table {table.fullname} has no column {', '.join(missing)}",
                              field=f"entities.{name}")
        self.json_columns = frozenset(cfg.json_columns) | {
            c.name for c in table.c if isinstance(c.type, JSON)}
        self.text_json = frozenset(c for c in self.json_columns if not isinstance(table.c[c].type, JSON))
        self.id_type = _python_type(table.c[cfg.id_column])
        self.cursor_tz = bool(getattr(table.c[cfg.cursor_column].type, "timezone", False))
        self.upserts = Upserts(table, cfg.key_column)

    @property
    def c(self) -> Any:
        return self.table.c

    def spec(self) -> EntitySpec:
        return EntitySpec(
            name=self.name, native_name=self.cfg.native_name or self.table.fullname,
            directions=frozenset(self.cfg.directions), fields=frozenset(c.name for c in self.table.c),
            key_field=self.cfg.key_column,
            description=f"staging table {self.table.fullname} (fields by reflection); changes: "
            + (f"rows in {self.cfg.status_column} = {self.cfg.status_new!r}, whatever their time"
               if self.cfg.status_column else
               f"{self.cfg.cursor_column}, which the producer must set on every change"),
        )

    # -- value conversion ------------------------------------------------------------------
    def db_time(self, value: dt.datetime) -> dt.datetime:
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value if self.cursor_tz else value.astimezone(dt.UTC).replace(tzinfo=None)

    def db_id(self, value: str) -> Any:
        return int(value) if self.id_type is int else value

    def record(self, row: Mapping[str, Any]) -> Record:
        data: dict[str, Any] = {}
        for name, value in row.items():
            if name in self.json_columns and isinstance(value, str | bytes):
                value = json.loads(value)
            data[name] = value
        return Record(id=str(row[self.cfg.id_column]), updated_at=_as_utc(row[self.cfg.cursor_column]),
                      data=data)

    def row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name in self.text_json and value is not None and not isinstance(value, str):
                value = json.dumps(value, default=_json_default, ensure_ascii=False)
            elif name in self.json_columns and value is not None:
                value = json.loads(json.dumps(value, default=_json_default))  # Decimals -> strings
            out[name] = value
        return out


def _python_type(column: Column[Any]) -> type:
    try:
        return column.type.python_type
    except NotImplementedError:  # SQLAlchemy's answer for types with no Python equivalent (e.g. NullType)
        return str


def _as_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite without a declared DATETIME type
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise PermanentError(f"cursor column value {value!r} is not a timestamp")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class SqlConnector(ConnectorBase):
    kind: ClassVar[str] = "sql"
    settings_model: ClassVar[type[ConnectorSettings]] = SqlSettings
    # No vendor caps a page or a batch here: one keyset SELECT per page, one executemany per batch.
    # 1,000 (the largest batch a pipeline config takes) keeps the per-batch store work small.
    max_page_size: ClassVar[int] = 1000
    max_batch_size: ClassVar[int] = 1000

    def __init__(self, settings: SqlSettings, context: SystemContext) -> None:
        self.settings = settings
        self.context = context
        self._secrets = [s for s in (*context.secrets,
                                     settings.password.get_secret_value() if settings.password else "") if s]
        self._engine = self._make_engine()
        self._tables: dict[str, _Table] = {}

    # -- setup -----------------------------------------------------------------------------
    def _make_engine(self) -> Engine:
        url = make_url(self.settings.url)
        if self.settings.password is not None:
            url = url.set(password=self.settings.password.get_secret_value())
        backend = url.get_backend_name()
        connect_args: dict[str, Any] = {}
        timeout = int(max(1, self.context.connect_timeout_s))
        if backend == "postgresql":
            connect_args["connect_timeout"] = timeout
        elif backend in ("mysql", "mariadb"):
            connect_args.update(connect_timeout=timeout,
                                read_timeout=int(max(1, self.context.read_timeout_s)))
        connect_args.update(self.settings.connect_args)
        kwargs: dict[str, Any] = {"pool_pre_ping": True, "connect_args": connect_args}
        if backend != "sqlite":
            kwargs["pool_size"] = self.settings.pool_size
        engine = create_engine(url, **kwargs)
        if backend == "sqlite":
            _sqlite_real_savepoints(engine)
        return engine

    def _table(self, entity: str) -> _Table:
        if entity in self._tables:
            return self._tables[entity]
        try:
            cfg = self.settings.entities[entity]
        except KeyError:
            # Not `self.spec`: that would reflect every table to name the one that is missing.
            raise UnknownEntity(self.kind, entity, list(self.settings.entities)) from None
        try:
            table = Table(cfg.table, MetaData(), schema=cfg.db_schema, autoload_with=self._engine)
        except NoSuchTableError:
            raise PermanentError(f"table {cfg.table!r} does not exist", system=self.context.name) from None
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        self._tables[entity] = _Table(entity, cfg, table)
        return self._tables[entity]

    def discover(self, entities: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`SupportsDiscovery`: each staging table's columns by SQLAlchemy reflection (generic type kind
        of types.py, nullable, and read-only for the id, cursor and bookkeeping columns the connector maintains)."""
        out: dict[str, dict[str, Any]] = {}
        for entity in entities:
            t = self._table(entity)
            managed = {c for c in (t.cfg.cursor_column, t.cfg.status_column, t.cfg.error_column) if c}
            fields = {
                c.name: field_info(
                    generic_kind(c.type), label=c.name, required=not c.nullable and not c.primary_key,
                    createable=c.name not in managed, updateable=c.name not in managed and not c.primary_key)
                for c in t.table.c
            }
            out[entity] = {"native_name": t.table.fullname, "key_field": t.spec().key_field,
                           "source": "reflection", "fields": fields}
        return out

    def _error(self, exc: BaseException) -> TransientError | PermanentError:
        """A whole-call failure with a message free of SQL parameters and secrets."""
        orig = getattr(exc, "orig", None) or exc
        message = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        for secret in self._secrets:
            message = message.replace(secret, "***")
        if isinstance(exc, DBAPIError) and not exc.connection_invalidated and not _is_connection_error(exc):
            return PermanentError(message, system=self.context.name)
        return TransientError(message, system=self.context.name)

    # -- protocol --------------------------------------------------------------------------
    def entities(self) -> Mapping[str, EntitySpec]:
        return {name: self._table(name).spec() for name in self.settings.entities}

    def read_changes(self, entity: str, since: Cursor | None, *, page_size: int = 100,
                     until: Cursor | None = None) -> Iterator[Page]:
        t = self._table(entity)
        # Handshake tables: the status says what is still to take, not the cursor (see the docstring).
        after = None if t.cfg.status_column else since
        yielded = False
        while True:
            query = select(t.table).where(*self._window(t, after, until))
            query = query.order_by(t.c[t.cfg.cursor_column], t.c[t.cfg.id_column]).limit(page_size)
            try:
                with self._engine.connect() as conn:
                    rows = [dict(r._mapping) for r in conn.execute(query)]
            except SQLAlchemyError as exc:
                raise self._error(exc) from None
            records = [t.record(r) for r in rows]
            if records:
                yielded = True
                yield Page(records, records[-1].cursor())
                after = records[-1].cursor()
            if len(records) < page_size:
                break
        if not yielded:
            yield Page([], None)

    def _window(self, t: _Table, since: Cursor | None, until: Cursor | None) -> list[ColumnElement[bool]]:
        c, i = t.c[t.cfg.cursor_column], t.c[t.cfg.id_column]
        where: list[ColumnElement[bool]] = []
        if since is not None:
            ts = t.db_time(since.updated_at)
            low = _typed_id(t, since.id)
            where.append(c >= ts if low is None else or_(c > ts, and_(c == ts, i > low)))
        if until is not None:
            ts = t.db_time(until.updated_at)
            high = None if until.id == _ID_MAX else _typed_id(t, until.id)
            where.append(c <= ts if high is None else or_(c < ts, and_(c == ts, i <= high)))
        if t.cfg.status_column:
            where.append(t.c[t.cfg.status_column] == t.cfg.status_new)
        return where

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        t = self._table(entity)
        key_col = t.cfg.key_column
        results: dict[int, WriteResult] = {}
        rows: list[tuple[int, WriteRequest, dict[str, Any]]] = []
        for n, req in enumerate(batch):
            row, problem = self._prepare(t, req)
            if problem is not None:
                results[n] = WriteResult(req.source_id, error=problem)
            else:
                rows.append((n, req, row))
        try:
            with self._engine.begin() as conn:
                # Which keys exist already (created or updated): the engine's lookup of this batch
                # says it for its requests; only the others are asked here.
                unknown = [row[key_col] for _, req, row in rows if not (req.target_id or req.key_looked_up)]
                before = self._ids_by_key(conn, t, unknown) if unknown else {}
                written, after = self._upsert_batch(conn, t, rows, results)
                missing = [k for _, _, k in written if k not in after]  # a row-by-row batch, or no RETURNING
                if missing:
                    after.update(self._ids_by_key(conn, t, missing))
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        for n, req, key in written:
            existed = bool(req.target_id) if (req.target_id or req.key_looked_up) else key in before
            action = WriteAction.UPDATED if existed else WriteAction.CREATED
            results[n] = WriteResult(req.source_id, target_id=after.get(key), action=action)
        return [results[n] for n in range(len(batch))]

    def _upsert_batch(self, conn: Any, t: _Table, rows: Sequence[tuple[int, WriteRequest, dict[str, Any]]],
                      results: dict[int, WriteResult]) -> tuple[list[tuple[int, WriteRequest, Any]], dict[Any, str]]:
        """The whole batch in one savepoint and one executemany; only if that fails, row by row, each
        in its own savepoint, so a bad row fails alone (its error in `results`) and the rest is written.
        Also the ids of the rows written by key, as far as the upsert returned them."""
        key_col = t.cfg.key_column
        if not rows:
            return [], {}
        try:
            with conn.begin_nested():
                ids = t.upserts.write_many(conn, [row for _, _, row in rows], returning=t.cfg.id_column)
            found = {self._identity(k): str(v) for k, v in (ids or {}).items()}
            return ([(n, req, row[key_col]) for n, req, row in rows],
                    {row[key_col]: found[i] for _, _, row in rows if (i := self._identity(row[key_col])) in found})
        except DBAPIError as exc:
            if exc.connection_invalidated or _is_connection_error(exc):
                raise
        written: list[tuple[int, WriteRequest, Any]] = []
        for n, req, row in rows:
            try:
                with conn.begin_nested():
                    t.upserts.write_one(conn, row)
            except DBAPIError as exc:
                if exc.connection_invalidated or _is_connection_error(exc):
                    raise
                results[n] = WriteResult(req.source_id, error=self._record_error(exc))
                continue
            written.append((n, req, row[key_col]))
        return written, {}

    def _prepare(self, t: _Table, req: WriteRequest) -> tuple[dict[str, Any], RecordError | None]:
        data = dict(req.data)
        key_col = t.cfg.key_column
        if data.get(key_col) in (None, "") and req.key:
            data[key_col] = req.key
        if data.get(key_col) in (None, ""):
            return {}, RecordError("missing_key", f"no value for key column {key_col}", field=key_col)
        unknown = sorted(set(data) - set(t.c.keys()))
        if unknown:
            return {}, RecordError("unknown_field", f"table {t.table.fullname} has no column "
                                   f"{', '.join(unknown)}", field=unknown[0])
        data.setdefault(t.cfg.cursor_column, t.db_time(dt.datetime.now(dt.UTC)))
        if t.cfg.status_column:
            data.setdefault(t.cfg.status_column, t.cfg.status_new)
        try:
            return t.row(data), None
        except (TypeError, ValueError) as exc:
            return {}, RecordError("invalid_json", str(exc))

    def _record_error(self, exc: DBAPIError) -> RecordError:
        orig = exc.orig
        message = str(orig).strip().splitlines()[0] if orig is not None else str(exc)
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return RecordError(code=type(orig).__name__ if orig is not None else "db_error", message=message)

    def _ids_by_key(self, conn: Any, t: _Table, keys: Sequence[Any]) -> dict[Any, str]:
        """Row ids by each key asked, matched as the database matched them (see `key_identity`)."""
        by_identity: dict[Any, str] = {}
        key_col, id_col = t.c[t.cfg.key_column], t.c[t.cfg.id_column]
        unique = list(dict.fromkeys(keys))
        postgres = self._engine.dialect.name == "postgresql"
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            # PostgreSQL: one array parameter (`= ANY(:keys)`), not one bind per key: compiling and
            # sending 500 binds cost more than the query (bench (c)).
            match = (key_col == any_(bindparam("keys", chunk, type_=postgresql.ARRAY(key_col.type)))
                     if postgres else key_col.in_(chunk))
            for key, row_id in conn.execute(select(key_col, id_col).where(match)):
                by_identity[self._identity(key)] = str(row_id)
        return {k: by_identity[self._identity(k)] for k in unique if self._identity(k) in by_identity}

    def key_identity(self, entity: str, key: str) -> str:
        """Keys compare as the database compares the key column. PostgreSQL (deterministic collations)
        and SQLite (BINARY) compare exactly: case, width and spaces count. MariaDB/MySQL's default
        collations (utf8mb4_general_ci, utf8mb4_uca1400_ai_ci) ignore case and, being PAD SPACE,
        trailing spaces (mariadb.com/kb/en/character-set-and-collation-overview); accents, which
        they ignore too, are not folded here."""
        return str(self._identity(key))

    def _identity(self, key: Any) -> Any:
        if isinstance(key, str) and self._engine.dialect.name in ("mysql", "mariadb"):
            return key.rstrip(" ").casefold()
        return key

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        t = self._table(entity)
        key_type = _python_type(t.c[t.cfg.key_column])
        typed = [int(k) if key_type is int else k for k in keys]
        try:
            with self._engine.connect() as conn:
                found = self._ids_by_key(conn, t, typed)
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return {str(k): v for k, v in found.items()}

    def fetch(self, entity: str, ids: Sequence[str]) -> dict[str, Record]:
        """`SupportsFetch`: the rows with these ids as they are now, whatever their cursor or status.

        A plain `SELECT ... WHERE id IN (...)` in chunks of 500; ids that do not fit the id column's type
        (a text id for an integer column) cannot exist and are simply absent.
        """
        t = self._table(entity)
        typed: list[Any] = []
        for value in dict.fromkeys(ids):
            try:
                typed.append(t.db_id(value))
            except ValueError:
                continue
        found: dict[str, Record] = {}
        try:
            with self._engine.connect() as conn:
                for start in range(0, len(typed), 500):
                    query = select(t.table).where(t.c[t.cfg.id_column].in_(typed[start:start + 500]))
                    for row in conn.execute(query):
                        record = t.record(dict(row._mapping))
                        found[record.id] = record
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return found

    def delete_modes(self, entity: str) -> frozenset[str]:
        """`SupportsDelete`: rows of a writable table can be deleted."""
        t = self._table(entity)
        return frozenset({"delete"}) if Direction.WRITE in t.cfg.directions else frozenset()

    def delete(self, entity: str, ids: Sequence[str], *, mode: str) -> list[WriteResult]:
        """Delete these rows (one transaction); a row already gone counts as deleted."""
        t = self._table(entity)
        if mode not in self.delete_modes(entity):
            raise ConfigError(f"table {t.table.fullname} cannot {mode} rows", field=f"entities.{entity}")
        typed = [t.db_id(i) for i in ids]
        try:
            with self._engine.begin() as conn:
                for start in range(0, len(typed), 500):
                    conn.execute(delete(t.table).where(t.c[t.cfg.id_column].in_(typed[start:start + 500])))
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return [WriteResult(i, i, WriteAction.UPDATED) for i in ids]

    def acknowledges(self, entity: str) -> bool:
        """Whether the engine must acknowledge rows of this entity (a handshake-style staging table)."""
        config = self.settings.entities.get(entity)
        return bool(config and config.status_column)

    def acknowledge(self, entity: str, ids: Sequence[str], *, ok: bool, error: str | None = None) -> int:
        """Mark handshake rows handled: `status_done` when ok, else `status_error` (+ reason).

        Only rows still in `status_new` change, so acknowledging twice is harmless. Returns how
        many rows changed.
        """
        t = self._table(entity)
        if not t.cfg.status_column:
            raise ConfigError(f"entity {entity!r} has no status_column to acknowledge",
                              field=f"entities.{entity}.status_column")
        values: dict[str, Any] = {t.cfg.status_column: t.cfg.status_done if ok else t.cfg.status_error}
        if t.cfg.error_column:
            values[t.cfg.error_column] = None if ok else (error or "")[:2000]
        typed = [t.db_id(i) for i in ids]
        changed = 0
        try:
            with self._engine.begin() as conn:
                for start in range(0, len(typed), 500):
                    stmt = (update(t.table).where(t.c[t.cfg.id_column].in_(typed[start:start + 500]),
                                                  t.c[t.cfg.status_column] == t.cfg.status_new)
                            .values(values))
                    changed += conn.execute(stmt).rowcount
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        return changed

    def check(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise self._error(exc) from None
        for entity in self.settings.entities:
            t = self._table(entity)
            try:
                with self._engine.connect() as conn:
                    conn.execute(select(t.table).limit(1)).all()
            except SQLAlchemyError as exc:
                raise self._error(exc) from None

    def close(self) -> None:
        self._engine.dispose()


def _typed_id(t: _Table, value: str) -> Any:
    """The cursor id in the id column's type; None means "before every id" (the empty id)."""
    if value == "":
        return None
    try:
        return t.db_id(value)
    except ValueError:
        raise PermanentError(f"cursor id {value!r} does not fit id column {t.cfg.id_column}") from None


def _is_connection_error(exc: DBAPIError) -> bool:
    """Errors of the connection itself (server gone, timeout), as opposed to one bad row."""
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    if name in ("OperationalError", "InterfaceError"):
        code = getattr(exc.orig, "args", (None,))[0]
        # MariaDB reports bad values (1366, 1292, 1265...) as OperationalError too: those are per row.
        return not (isinstance(code, int) and 1000 <= code < 2000)
    return False


def _sqlite_real_savepoints(engine: Engine) -> None:
    """pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN itself."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

