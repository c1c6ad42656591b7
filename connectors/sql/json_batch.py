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
conversion a literal or an untyped parameter gets. Values go as JSON strings, numbers, booleans or
null: str, int, float, bool, and as their text form Decimal, date, time, datetime and UUID. A value
of any other Python type, or a column whose type has no plain text input here (JSON, arrays,
bytea), leaves the batch to the generic statement.

Aware datetimes into a `timestamp without time zone` column are converted to the session's time
zone (cast through timestamptz), as psycopg's own timestamptz parameter is.
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

# Column types whose values go as text and come back through the type's own input function.
_TEXT_INPUT = (sqltypes.String, sqltypes.Integer, sqltypes.Numeric, sqltypes.Boolean, sqltypes.Date,
               sqltypes.DateTime, sqltypes.Time, sqltypes.Uuid)


class NotPlain(Exception):
    """A value or column this path does not send; the caller uses the generic statement."""


# Exactly these types (not subclasses, not lists or dicts, which JSON would carry silently as text).
_PLAIN = frozenset({str, int, float, bool, type(None), Decimal, dt.datetime, dt.date, dt.time, uuid.UUID})


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
        return all(isinstance(self.table.c[c].type, _TEXT_INPUT) for c in columns)

    def write(self, conn: Connection, columns: tuple[str, ...], rows: Sequence[dict[str, Any]],
              returning: str | None) -> dict[Any, Any]:
        """Upsert `rows` (all with exactly `columns`); the ids by key as RETURNING gave them."""
        last = {row[self.key_column]: row for row in rows}  # one statement cannot touch a row twice
        odd = next((v for row in last.values() for v in row.values() if type(v) not in _PLAIN), None)
        if odd is not None:
            raise NotPlain(type(odd).__name__)
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
        casts = ", ".join(f"u.{quote(c)}::{self._cast(conn, c)}" for c in columns)
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
        kind = self.table.c[column].type
        name = kind.compile(dialect=conn.dialect)
        if isinstance(kind, sqltypes.DateTime) and not kind.timezone:
            return f"timestamptz::{name}"
        return name
