"""PostgreSQL: a batch's upsert as one short statement with the whole batch in one JSON parameter.

    INSERT INTO t (a, b) SELECT u.a::<type of a>, u.b::<type of b>
    FROM json_to_recordset(%s::json) AS u(a text, b text)
    ON CONFLICT (key) DO UPDATE SET b = EXCLUDED.b RETURNING key, id

SQLAlchemy sends an executemany with RETURNING as multi-row `INSERT ... VALUES (...), (...)`: one
bind per value, each run through its bind processor, and a statement text of thousands of
placeholders that psycopg parses afresh every time (it caches only short queries,
psycopg/_queries.py). Here the text is the same for every batch of a column set, so it is parsed
once; the batch is one `json.dumps` (C), which `json_to_recordset` splits into rows of text
(postgresql.org/docs/current/functions-json.html), each cast to its column's type: the same input
conversion a literal or an untyped parameter gets. Casts carry no length or scale (varchar(n) and
numeric(p, s) are reached by assignment, which refuses what does not fit instead of cutting it).
Each column takes only the Python types whose text form its input function reads as psycopg's
typed parameter would be assigned (`_accepting`): no float into numeric or integer, no datetime
into date, no aware datetime or time into a column without a time zone. Anything else, or a column
whose type has no plain text input here (JSON, arrays, bytea), leaves the batch to the generic
statement, as does a batch the database refuses (then row by row, each error on its own row).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy import types as sqltypes

NONE = type(None)


def _naive(value: Any) -> bool:
    return getattr(value, "tzinfo", None) is None  # text and None have none: only datetimes and times can be aware


def _accepting(kind: sqltypes.TypeEngine[Any]) -> tuple[frozenset[type], bool] | None:
    """The exact Python types this path sends for a column of `kind` (and whether datetimes and times
    must be naive): only those whose text form the column's own input function reads as psycopg's
    typed parameter would be assigned. None: not this path (JSON, arrays, bytea, intervals...)."""
    if isinstance(kind, sqltypes.Enum):
        return frozenset({str, NONE}), False
    if isinstance(kind, sqltypes.String):
        return frozenset({str, int, Decimal, NONE}), False
    if isinstance(kind, sqltypes.Boolean):
        return frozenset({bool, str, NONE}), False
    if isinstance(kind, sqltypes.Integer):
        return frozenset({int, str, NONE}), False  # a float or Decimal would be rounded by psycopg's route
    if isinstance(kind, sqltypes.Float):
        return frozenset({int, float, Decimal, str, NONE}), False
    if isinstance(kind, sqltypes.Numeric):
        return frozenset({int, Decimal, str, NONE}), False  # float -> numeric keeps 15 digits there, 17 here
    if isinstance(kind, sqltypes.DateTime):
        return frozenset({dt.datetime, str, NONE}), not kind.timezone
    if isinstance(kind, sqltypes.Date):
        return frozenset({dt.date, str, NONE}), False  # exact type: a datetime is refused
    if isinstance(kind, sqltypes.Time):
        return frozenset({dt.time, str, NONE}), True
    if isinstance(kind, sqltypes.Uuid):
        return frozenset({uuid.UUID, str, NONE}), False
    return None


class NotPlain(Exception):
    """A value or column this path does not send; the caller uses the generic statement."""


def _text_form(value: Any) -> str:
    """json.dumps' `default`: called only for what JSON has no type for."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise NotPlain(type(value).__name__)


class JsonBatchUpserts:
    """The statements of one table, built once per column set and returning column."""

    def __init__(self, table: Table, key_column: str) -> None:
        self.table = table
        self.key_column = key_column
        self._texts: dict[tuple[tuple[str, ...], str | None], str] = {}

    def usable(self, columns: Sequence[str]) -> bool:
        return all(_accepting(self.table.c[c].type) is not None for c in columns)

    def write(self, conn: Connection, columns: tuple[str, ...], rows: Sequence[dict[str, Any]],
              returning: str | None) -> dict[Any, Any]:
        """Upsert `rows` (all with exactly `columns`); the ids by key as RETURNING gave them."""
        last = {row[self.key_column]: row for row in rows}  # one statement cannot touch a row twice
        for name in columns:
            accepted = _accepting(self.table.c[name].type)
            if accepted is None:
                raise NotPlain(name)
            kinds, naive_only = accepted
            for row in last.values():
                value = row[name]
                if type(value) not in kinds or (naive_only and not _naive(value)):
                    raise NotPlain(f"{name}: {type(value).__name__}")
        try:
            batch = json.dumps(list(last.values()), default=_text_form, ensure_ascii=False, allow_nan=False)
        except ValueError as exc:  # NaN or infinity: not JSON
            raise NotPlain(str(exc)) from None
        text = self._texts.get((columns, returning))
        if text is None:
            text = self._texts[(columns, returning)] = self._text(conn, columns, returning)
        result = conn.exec_driver_sql(text, (batch,))
        return dict(result.all()) if returning else {}

    def _text(self, conn: Connection, columns: tuple[str, ...], returning: str | None) -> str:
        quote = conn.dialect.identifier_preparer.quote
        table = conn.dialect.identifier_preparer.format_table(self.table)
        names = ", ".join(quote(c) for c in columns)
        casts = ", ".join(f"u.{quote(c)}{self._cast(conn, c)}" for c in columns)
        as_text = ", ".join(f"{quote(c)} text" for c in columns)
        others = [c for c in columns if c != self.key_column]
        action = ("DO UPDATE SET " + ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in others)
                  if others else "DO NOTHING")
        text = (f"INSERT INTO {table} ({names}) SELECT {casts} FROM json_to_recordset(%s::json) AS u({as_text}) "
                f"ON CONFLICT ({quote(self.key_column)}) {action}")
        if returning:
            text += f" RETURNING {quote(self.key_column)}, {quote(returning)}"
        return text

    def _cast(self, conn: Connection, column: str) -> str:
        """The cast from text, without a length or scale: an explicit cast to varchar(n) or numeric(p, s)
        cuts or rounds silently, where assigning the value to the column refuses what does not fit,
        as the generic statement's parameter is refused."""
        kind = self.table.c[column].type
        if isinstance(kind, sqltypes.String) and not isinstance(kind, sqltypes.Enum):
            return ""  # text, assigned to the column as it is
        if isinstance(kind, sqltypes.Numeric) and not isinstance(kind, sqltypes.Float):
            return "::NUMERIC"
        return f"::{kind.compile(dialect=conn.dialect)}"
