"""The webhook inbox table: every accepted push event, committed before the sender hears 200.

One row per delivery (unique per source by the sender's delivery id, which is how duplicates are
dropped). `pipelines` names the pipelines the event was routed to when it arrived; `remaining` the
ones still to deliver. The nonce and its arrival time let the receiver refuse a replayed request
within the signature's max-age window, across restarts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from erphub.store.tables import Base


class InboxRow(Base):
    __tablename__ = "erphub_inbox"
    __table_args__ = (
        UniqueConstraint("source", "deliver_id", name="uq_inbox_source_deliver"),
        Index("ix_inbox_source_nonce", "source", "nonce", "received_at"),
        Index("ix_inbox_status_due", "status", "next_attempt_at"),
        Index("ix_inbox_source_record", "source", "record_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(128))
    deliver_id: Mapped[str] = mapped_column(String(255))
    nonce: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pipelines: Mapped[list] = mapped_column(JSON)  # routed to, at arrival
    remaining: Mapped[list] = mapped_column(JSON)  # not yet delivered (or dead-lettered)
    op: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(255))
    record_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
