"""Plain values the store hands out, so callers never hold an ORM row outside a session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from erphub.core.outcomes import ErrorClass, Stage
from erphub.core.records import Cursor, JsonDict


@dataclass(frozen=True, slots=True)
class Link:
    source_id: str
    target_id: str | None
    match_key: str | None
    payload_hash: str | None
    state: str  # "synced"; "pending" (no target id) only in stores written by older versions
    written_payload: JsonDict | None = None
    updated_at: datetime | None = None
    source_updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LinkUpdate:
    source_id: str
    target_id: str | None
    match_key: str | None
    payload_hash: str | None
    written_payload: JsonDict | None
    state: str = "synced"
    source_updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    source_id: str
    source_payload: JsonDict
    mapped_payload: JsonDict | None
    stage: Stage
    error_class: ErrorClass
    error_code: str
    message: str
    field: str | None = None
    source_updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    pipeline: str
    run_id: str
    source_id: str
    source_payload: JsonDict
    mapped_payload: JsonDict | None
    stage: str        # a Stage's value, as stored (kept a plain string: the store may hold older names)
    error_class: str  # an ErrorClass's value, as stored
    error_code: str
    field: str | None
    message: str
    attempts: int
    status: str
    created_at: datetime
    updated_at: datetime
    resolution: str | None = None
    source_updated_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "source_id": self.source_id,
            "stage": self.stage,
            "error_class": self.error_class,
            "error_code": self.error_code,
            "field": self.field,
            "message": self.message,
            "attempts": self.attempts,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "run_id": self.run_id,
            "source_payload": self.source_payload,
            "mapped_payload": self.mapped_payload,
            "resolution": self.resolution,
        }


@dataclass(frozen=True, slots=True)
class AgreedValue:
    """Both sides of a two-way pair now hold `value` for one record's field (keys: see `AgreedRow`).

    `settles` names the held conflicts, as (pipeline, source id, field), this agreement ends: once both
    sides hold one value there is nothing left for a person to decide.
    """

    pair: str
    record_id: str
    field: str
    value: Any
    settles: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Conflict:
    """A two-way field both sides changed; `winner` is None while it is held for review."""

    pipeline: str
    source_id: str
    target_id: str
    field: str
    source_value: Any
    target_value: Any
    base_value: Any
    rule: str
    winner: str | None
    id: int = 0
    status: str = ""
    run_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "pipeline": self.pipeline, "source_id": self.source_id, "target_id": self.target_id,
                "field": self.field, "source_value": self.source_value, "target_value": self.target_value,
                "base_value": self.base_value, "rule": self.rule, "winner": self.winner, "status": self.status,
                "run_id": self.run_id}


@dataclass
class BatchCommit:
    """Everything one batch changes in the store, written in one transaction."""

    pipeline: str
    run_id: str
    links: list[LinkUpdate] = field(default_factory=list)
    dead_letters: list[NewDeadLetter] = field(default_factory=list)
    resolved_source_ids: list[str] = field(default_factory=list)  # delivered: close their open dead letters
    cursor: Cursor | None = None
    resolution: str = "delivered"  # or "replayed" when a person asked for the redelivery
    conflicts: list[Conflict] = field(default_factory=list)
    agreed: list[AgreedValue] = field(default_factory=list)
    # When set, only these source ids can have an open dead letter (the run knows them, holding the
    # pipeline's lease): the store resolves only those, and sends no query at all when none is resolved.
    open_letters: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    pipeline: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    error: str | None
    cursor_after: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "pipeline": self.pipeline,
            "trigger": self.trigger,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": round((self.finished_at - self.started_at).total_seconds(), 3) if self.finished_at else None,
            "counts": self.counts,
            "error": self.error,
        }
