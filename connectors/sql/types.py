"""Reflected column types as the generic kinds a schema snapshot uses (erphub.mappings.schema_check).

Each dialect reflects its own classes (MariaDB: DECIMAL, BIGINT, SMALLINT, REAL, VARCHAR, TINYINT;
PostgreSQL: NUMERIC, DOUBLE_PRECISION, TIMESTAMP; SQLite: its declared names), so the class name is
no kind the mapping check knows; SQLAlchemy's generic base classes are common to all of them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, Numeric, String, Time
from sqlalchemy.types import TypeEngine

# SQLAlchemy 2.1's Float is no Numeric any more (both share NumericCommon), so both are listed.
_KINDS: tuple[tuple[type[TypeEngine[Any]] | tuple[type[TypeEngine[Any]], ...], str], ...] = (
    (Boolean, "boolean"),
    (Integer, "integer"),  # INTEGER, BIGINT, SMALLINT, TINYINT, MEDIUMINT
    ((Numeric, Float), "numeric"),  # DECIMAL, NUMERIC, FLOAT, REAL, DOUBLE (PRECISION)
    (String, "string"),  # VARCHAR, CHAR, TEXT and its MariaDB sizes, ENUM
    (DateTime, "datetime"),
    (Date, "date"),
    (Time, "time"),
    (JSON, "json"),
)


def generic_kind(column_type: TypeEngine[Any]) -> str:
    """The generic kind of a reflected type, else the dialect's own class name (lower case)."""
    for base, kind in _KINDS:
        if isinstance(column_type, base):
            return kind
    return type(column_type).__name__.lower()
