"""An in-memory system: the reference connector for engine tests and a template for new connectors.

A new connector is a module (or folder) `connectors/<kind>.py` defining a `ConnectorBase` subclass
whose `kind` is the module's name (the registry finds it there), plus its contract harness
`tests/contract/harnesses/<kind>.py`.

It behaves like a well-mannered API: reads in (updated_at, id) order with a checkpoint on every
page, writes that refuse records failing a per-entity validator, and lookup by match key. Tests
reach into `MemorySystem` to change records, break writes or take the system down.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from erphub.connectors.base import ConnectorBase, ConnectorSettings, SystemContext
from erphub.core.errors import TransientError
from erphub.core.records import (
    Cursor,
    Direction,
    EntitySpec,
    JsonDict,
    Page,
    Record,
    RecordError,
    WriteAction,
    WriteRequest,
    WriteResult,
)

BOTH = frozenset({Direction.READ, Direction.WRITE})


@dataclass
class MemorySystem:
    """The 'server side' of a memory connector, shared by every connector built on it."""

    key_fields: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    validators: dict[str, Callable[[JsonDict], str | None]] = field(default_factory=dict)
    down: bool = False
    fail_next_writes: int = 0  # a short outage: this many write calls fail as if the system were down
    write_calls: int = 0
    clock: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def put(self, entity: str, data: JsonDict, *, record_id: str | None = None,
            updated_at: datetime | None = None) -> Record:
        record_id = record_id or f"{entity[:3]}-{next(self._ids):06d}"
        record = Record(record_id, updated_at or self.tick(), dict(data))
        self.records.setdefault(entity, {})[record_id] = record
        return record

    def all(self, entity: str) -> list[Record]:
        return list(self.records.get(entity, {}).values())

    def count_with_key(self, entity: str, key: str) -> int:
        key_field = self.key_fields.get(entity)
        return sum(1 for record in self.all(entity) if key_field and str(record.data.get(key_field)) == key)


_SYSTEMS: dict[str, MemorySystem] = {}


def memory_system(name: str) -> MemorySystem:
    """The shared in-process system called `name` (created on first use)."""
    return _SYSTEMS.setdefault(name, MemorySystem())


class MemorySettings(ConnectorSettings):
    system: str
    entities: dict[str, str] = Field(default_factory=dict)  # entity -> key field


class MemoryConnector(ConnectorBase):
    kind: ClassVar[str] = "memory"
    settings_model: ClassVar[type[ConnectorSettings]] = MemorySettings
    read_lag_s: ClassVar[float] = 0.0  # one process, one clock, commits are instant: nothing to overlap

    def __init__(self, settings: MemorySettings, context: SystemContext) -> None:
        self.settings = settings
        self.context = context
        self.system = memory_system(settings.system)
        self.system.key_fields.update(settings.entities)

    def entities(self) -> Mapping[str, EntitySpec]:
        return {
            name: EntitySpec(name=name, native_name=name, directions=BOTH, fields=None, key_field=key)
            for name, key in self.settings.entities.items()
        }

    def read_changes(self, entity: str, since: Cursor | None, *, page_size: int = 100,
                     until: Cursor | None = None) -> Iterator[Page]:
        if self.system.down:
            raise TransientError("system is down", system=self.context.name)
        ordered = sorted(self.system.all(entity), key=lambda r: (r.updated_at, r.id))
        selected = [r for r in ordered
                    if (since is None or since.is_before(r.updated_at, r.id))
                    and (until is None or (r.updated_at, r.id) <= until.key())]
        if not selected:
            yield Page([], None)
            return
        for start in range(0, len(selected), page_size):
            chunk = selected[start:start + page_size]
            yield Page(chunk, chunk[-1].cursor())

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        self.system.write_calls += 1
        if self.system.fail_next_writes > 0:
            self.system.fail_next_writes -= 1
            raise TransientError("system is temporarily unavailable", system=self.context.name)
        if self.system.down:
            raise TransientError("system is down", system=self.context.name)
        validator = self.system.validators.get(entity)
        results: list[WriteResult] = []
        for request in batch:
            problem = validator(request.data) if validator else None
            if problem:
                results.append(WriteResult(request.source_id, error=RecordError("invalid", problem)))
                continue
            existing = self.system.records.get(entity, {}).get(request.target_id or "")
            if existing is not None:
                merged = {**existing.data, **request.data}
                self.system.put(entity, merged, record_id=existing.id)
                results.append(WriteResult(request.source_id, existing.id, WriteAction.UPDATED))
            else:
                record = self.system.put(entity, dict(request.data))
                results.append(WriteResult(request.source_id, record.id, WriteAction.CREATED))
        return results

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        key_field = self.settings.entities.get(entity)
        wanted = set(keys)
        return {str(r.data.get(key_field)): r.id for r in self.system.all(entity)
                if key_field and str(r.data.get(key_field)) in wanted}

    def fetch(self, entity: str, ids: Sequence[str]) -> dict[str, Record]:
        """Current records by id (two-way sync compares against what the target has now)."""
        records = self.system.records.get(entity, {})
        return {record_id: records[record_id] for record_id in ids if record_id in records}

    def delete_modes(self, entity: str) -> frozenset[str]:
        return frozenset({"deactivate", "delete"})

    def delete(self, entity: str, ids: Sequence[str], *, mode: str) -> list[WriteResult]:
        """`SupportsDelete`: deactivate sets `active: false` (with a new change time); delete removes."""
        records = self.system.records.setdefault(entity, {})
        for record_id in ids:
            if record_id in records:
                if mode == "delete":
                    del records[record_id]
                else:
                    self.system.put(entity, {**records[record_id].data, "active": False}, record_id=record_id)
        return [WriteResult(record_id, record_id, WriteAction.UPDATED) for record_id in ids]

    def check(self) -> None:
        if self.system.down:
            raise TransientError("system is down", system=self.context.name)

    def close(self) -> None:
        """Nothing to release: the memory system outlives its connectors on purpose."""


def seed(system: MemorySystem, entity: str, rows: Sequence[Mapping[str, Any]]) -> list[Record]:
    return [system.put(entity, dict(row)) for row in rows]
