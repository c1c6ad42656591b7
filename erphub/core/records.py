"""The vocabulary shared by connectors, mappings, the store and the engine.

Plain frozen dataclasses: cheap to build in hot loops, hashable where it matters, and free of
any I/O or framework.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NoReturn

JsonDict = dict[str, Any]


class Direction(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position of an incremental read: records strictly after (updated_at, id) are new.

    Comparing the pair, not the timestamp alone, keeps records that share one timestamp across
    a page boundary from being lost or read twice.
    """

    updated_at: datetime
    id: str = ""

    def __post_init__(self) -> None:
        # Always UTC: SQLite keeps no offset, so 10:00+08:00 stored as-is would read back as 10:00Z.
        moment = self.updated_at
        object.__setattr__(self, "updated_at",
                           moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC))

    def key(self) -> tuple[datetime, str]:
        return (self.updated_at, self.id)

    def is_before(self, updated_at: datetime, record_id: str) -> bool:
        """True when a record at (updated_at, record_id) comes after this cursor."""
        if updated_at.tzinfo is None:
            updated_at = updated_at.replace(tzinfo=UTC)
        return (updated_at, record_id) > (self.updated_at, self.id)


@dataclass(frozen=True, slots=True)
class Record:
    """One record as a connector read it: its id in that system, when it last changed, its data."""

    id: str
    updated_at: datetime
    data: JsonDict

    def cursor(self) -> Cursor:
        return Cursor(self.updated_at, self.id)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of an incremental read.

    `checkpoint` is the cursor the engine may save once every record of this page (and of the
    pages before it) is committed. A connector whose paging order is not the (updated_at, id)
    order (Jiandaoyun pages by data id) returns None on intermediate pages and the true
    high-water mark on the last one.
    """

    records: Sequence[Record]
    checkpoint: Cursor | None


class WriteAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # the target already holds exactly this: nothing was applied


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """A mapped record to deliver.

    `key` is the value of the mapping's match key (a business code such as Kingdee's FNumber,
    an external id): the connector uses it to find a record it may already have created, which
    is what makes a retried or crashed write never duplicate. `target_id` is set when a link
    already knows the record's id in the target.

    `key_looked_up` says the caller looked the key up in the target just before this write (the
    engine's one lookup per batch): a request with no `target_id` is then known to be absent, and
    the connector need not look it up again before the create. Its own checks after a refused
    create ("number already exists") still apply.

    `target_meta` is what the connector asked the link to keep about this target record at its last
    write (`WriteResult.target_meta`), e.g. the ERP's id of each order line; None when unknown.
    """

    source_id: str
    key: str | None
    target_id: str | None
    data: JsonDict
    idempotency_key: str
    owned_fields: frozenset[str] | None = None
    key_looked_up: bool = False
    target_meta: JsonDict | None = None


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one record of a batch was refused. `transient` errors may succeed on replay later."""

    code: str
    message: str
    field: str | None = None
    transient: bool = False


# The written payload's key under which a link keeps a connector's `target_meta` (never a field name:
# field names are the target's own, and no system names a field so).
TARGET_META = "__target_meta__"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """One record's outcome. `target_meta` (JSON) is kept in the link and handed back on the next
    write of this record as `WriteRequest.target_meta`; None keeps what the link had."""

    source_id: str
    target_id: str | None = None
    action: WriteAction | None = None
    error: RecordError | None = None
    target_meta: JsonDict | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.target_id is not None


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """An entity a connector offers: our name for it, the system's own name, what it can do.

    `fields` is the declared schema (top-level field names) used to check mappings at compile
    time; None means the system's schema is open (a staging table read by reflection, say).
    `key_field` is the target field used as the match key when writing.
    `state_changes_timestamped` is False where the vendor lets a document change state (Submit, UnAudit)
    without setting any date the change predicate can see: an incremental read misses such a change, so
    `erphub serve` reconciles a pipeline reading this entity on a default schedule (config `reconcile:`).
    """

    name: str
    native_name: str
    directions: frozenset[Direction]
    fields: frozenset[str] | None = None
    key_field: str | None = None
    child_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    description: str = ""
    state_changes_timestamped: bool = True

    def can(self, direction: Direction) -> bool:
        return direction in self.directions


def owned_part(data: Mapping[str, Any], owned: Collection[str] | None, *, keep: Collection[str] = (),
               casefold: bool = False) -> dict[str, Any]:
    """The part of `data` a pipeline may write over an existing record: the fields it owns (everything
    when `owned` is None) and those in `keep` (the match key). `casefold` for systems whose field names
    ignore case (Kingdee)."""
    if owned is None:
        return dict(data)
    fold = str.casefold if casefold else str
    allowed = {fold(name) for name in (*owned, *keep)}
    return {name: value for name, value in data.items() if fold(name) in allowed}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


# One encoder for every call: json.dumps with options builds a new JSONEncoder each time.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def canonical_json(data: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace, Decimals and datetimes as strings."""
    return _CANONICAL.encode(data)


def payload_hash(data: Any) -> str:
    """Hash of what we would write: equal hashes mean nothing to deliver."""
    return hashed_payload(data)[1]


def hashed_payload(data: Any) -> tuple[str, str]:
    """(canonical JSON text, its hash): the text, for a caller that will store the same payload."""
    text = canonical_json(data)
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


class CanonicalPayload(dict[str, Any]):
    """A payload carrying its canonical JSON text, so the store does not encode it a second time
    (it was encoded for its hash: a twentieth of a sync's CPU, bench (b)). Read-only, so the text
    can never go stale."""

    __slots__ = ("canonical",)

    def __init__(self, data: Mapping[str, Any], canonical: str) -> None:
        super().__init__(data)
        self.canonical = canonical

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle rebuild it whole, not key by key
        return (CanonicalPayload, (dict(self), self.canonical))

    def _read_only(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise TypeError("a CanonicalPayload is read-only: copy it with dict() to change it")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only


def utcnow() -> datetime:
    return datetime.now(UTC)
