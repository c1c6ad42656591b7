"""The Connector protocol: what the engine asks of every system.

A connector does I/O only. It declares its entities (with their schema and directions), reads
changes page by page in (updated_at, id) order, writes batches returning one result per record
(never all-or-nothing), and can find records it may already have created by their match key,
which is how a write that crashed half-way is never repeated as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

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

__all__ = [
    "Connector",
    "ConnectorSettings",
    "Cursor",
    "Direction",
    "EntitySpec",
    "Page",
    "Record",
    "RecordError",
    "SupportsFetch",
    "SystemContext",
    "WriteAction",
    "WriteRequest",
    "WriteResult",
]


class ConnectorSettings(BaseModel):
    """Base for each connector's own settings model (validated by the connector, not config/)."""

    model_config = ConfigDict(extra="forbid")


class SystemContext(BaseModel):
    """What the hub tells a connector about the configured system it serves."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    rate_limit_per_second: float | None = None
    burst: int | None = None
    max_concurrency: int | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_attempts: int = 5
    max_retry_seconds: float = 60.0
    secrets: tuple[str, ...] = ()
    # Tests and sandboxes mount an in-process server here (httpx.MockTransport/ASGI transport).
    transport: Any = None


@runtime_checkable
class Connector(Protocol):
    """One configured external system."""

    kind: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]

    def entities(self) -> Mapping[str, EntitySpec]: ...

    def read_changes(self, entity: str, since: Cursor | None, *, page_size: int = 100,
                     until: Cursor | None = None) -> Iterator[Page]:
        """Pages of records changed strictly after `since` (all records when None), oldest first."""
        ...

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        """Deliver a batch; one result per request, in order. Raises only when the whole call failed."""
        ...

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """Target ids of existing records by match-key value (keys not found are absent)."""
        ...

    def check(self) -> None:
        """Connect, authenticate and read one page; raise a ConnectorError with the reason."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SupportsFetch(Protocol):
    """Optional: current records by id. Two-way pipelines need it to see what the target has now."""

    def fetch(self, entity: str, ids: Sequence[str]) -> dict[str, Record]: ...
