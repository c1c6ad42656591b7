"""A pipeline's cursor, advanced in the transaction of each batch's commit.

Once per batch, so its statements are built once (Core, bound by name): building and caching an
ORM select and update each time cost about as much as writing the batch's links (bench (b)).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from erphub.core.records import Cursor, utcnow
from erphub.store.db import as_utc
from erphub.store.tables import CursorRow

_CURSORS = cast(Table, CursorRow.__table__)
_STORED = select(_CURSORS.c.updated_at, _CURSORS.c.record_id).where(_CURSORS.c.pipeline == bindparam("c_pipeline"))
_FIRST = insert(_CURSORS).values(pipeline=bindparam("c_pipeline"), updated_at=bindparam("c_updated_at"),
                                 record_id=bindparam("c_record_id"), saved_at=bindparam("c_saved_at"))
_MOVE = (update(_CURSORS).where(_CURSORS.c.pipeline == bindparam("c_pipeline"))
         .values(updated_at=bindparam("c_updated_at"), record_id=bindparam("c_record_id"),
                 saved_at=bindparam("c_saved_at")))


def advance(session: Session, pipeline: str, cursor: Cursor) -> None:
    """Move the pipeline's cursor to `cursor`, never backwards (backfills re-read old windows)."""
    connection = session.connection()
    now = utcnow()
    params = {"c_pipeline": pipeline, "c_updated_at": cursor.updated_at, "c_record_id": cursor.id, "c_saved_at": now}
    stored = connection.execute(_STORED, {"c_pipeline": pipeline}).first()
    if stored is None:
        connection.execute(_FIRST, params)
    elif cursor.key() > Cursor(as_utc(stored.updated_at) or now, stored.record_id).key():
        connection.execute(_MOVE, params)
