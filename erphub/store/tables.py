"""The store's tables. Alembic migrations in `erphub/store/migrations/` create exactly these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Double,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CursorRow(Base):
    """Where a pipeline's incremental read stands: records after (updated_at, record_id) are new."""

    __tablename__ = "erphub_cursors"

    pipeline: Mapped[str] = mapped_column(String(128), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    record_id: Mapped[str] = mapped_column(String(255), default="")
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LinkRow(Base):
    """One source record ↔ its target record, with the hash of what was last written.

    Written when the batch commits, after the target answered. A crash between the target accepting a
    create and that commit leaves no link: the next run looks the record's key up in the target, as
    it does for every record it has no target id for, and updates what it finds. Earlier versions
    also wrote a `pending` row before each create; such rows hold no target id and are looked up alike.
    """

    __tablename__ = "erphub_links"
    __table_args__ = (
        UniqueConstraint("pipeline", "source_id", name="uq_links_pipeline_source"),
        Index("ix_links_target", "target_system", "target_entity", "target_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    source_system: Mapped[str] = mapped_column(String(128))
    source_entity: Mapped[str] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(255))
    target_system: Mapped[str] = mapped_column(String(128))
    target_entity: Mapped[str] = mapped_column(String(128))
    target_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    match_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    payload_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    written_payload: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="synced")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the source last changed, as of what we delivered: an older copy arriving late is stale.
    source_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeadLetterRow(Base):
    """A record that could not be delivered, kept whole with why, until replayed or discarded."""

    __tablename__ = "erphub_dead_letters"
    __table_args__ = (Index("ix_dead_letters_pipeline_status", "pipeline", "status"),
                      Index("ix_dead_letters_source", "pipeline", "source_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(255))
    source_payload: Mapped[dict] = mapped_column(JSON)
    mapped_payload: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    stage: Mapped[str] = mapped_column(String(16))
    error_class: Mapped[str] = mapped_column(String(128))
    error_code: Mapped[str] = mapped_column(String(128), default="")
    field: Mapped[str | None] = mapped_column(String(255), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeadLetterAuditRow(Base):
    """A person's decision about a dead letter (discarded, and why): who, when, and the reason given."""

    __tablename__ = "erphub_dead_letter_audit"
    __table_args__ = (Index("ix_dead_letter_audit_letter", "dead_letter_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dead_letter_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    operator: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRow(Base):
    """One execution of a pipeline, with its counts and outcome."""

    __tablename__ = "erphub_runs"
    __table_args__ = (Index("ix_runs_pipeline_started", "pipeline", "started_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    trigger: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cursor_before: Mapped[str | None] = mapped_column(String(300), nullable=True)
    cursor_after: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ConflictRow(Base):
    """Both sides of a two-way pair changed one field since they last agreed: both values, and the outcome."""

    __tablename__ = "erphub_conflicts"
    __table_args__ = (Index("ix_conflicts_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(255))
    target_id: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(255))
    source_value: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    target_value: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    base_value: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    rule: Mapped[str] = mapped_column(String(32))
    winner: Mapped[str | None] = mapped_column(String(16), nullable=True)  # source | target | None while held
    status: Mapped[str] = mapped_column(String(16))  # resolved | held
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AgreedRow(Base):
    """The last value both sides of a two-way pair agreed on, per record and field.

    Keyed by the pair (its two pipeline names, sorted), the record's id on the first pipeline's source
    side and that pipeline's target field name, so both directions read and write the same row.
    """

    __tablename__ = "erphub_agreed_values"

    pair: Mapped[str] = mapped_column(String(255), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    field: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    agreed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LeaseRow(Base):
    """Who is running a pipeline now: one run of a pipeline at a time, across processes."""

    __tablename__ = "erphub_leases"

    pipeline: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConfiguredPipelineRow(Base):
    """When the store first saw a pipeline in the config: where "never succeeded" starts counting."""

    __tablename__ = "erphub_configured_pipelines"

    pipeline: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DriftRow(Base):
    """What a pipeline's last reconcile left, by kind (missing, different, extra; 0 included)."""

    __tablename__ = "erphub_drift"

    pipeline: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    records: Mapped[int] = mapped_column(Integer)
    reconciled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RateBucketRow(Base):
    """The hub-wide token bucket of one `rate_limit: {shared: true}` system (PostgreSQL stores only).

    Written in raw SQL by `erphub.connectors.shared_limit` (connectors sit below the store); declared
    here so that this module still names every table the migrations create."""

    __tablename__ = "erphub_rate_buckets"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    stamp: Mapped[float] = mapped_column(Double)  # the database server's epoch seconds at the last turn
