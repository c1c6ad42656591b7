"""The Connector protocol: what the engine asks of every system, and a small base class to build one on.

A connector does I/O only. It declares its entities (with their schema and directions), reads
changes page by page in (updated_at, id) order, writes batches returning one result per record
(never all-or-nothing), and can find records it may already have created by their match key,
which is how a write that crashed half-way is never repeated as a duplicate.

Optional capabilities are Protocols the engine checks with `isinstance`:

    SupportsFetch        current records by id (two-way pipelines, reconcile and replay need it)
    SupportsDelete       applies a deletion in the source to the target record (deactivate or delete)
    SupportsAcknowledge  tells the source which records were taken (handshake staging tables)
    SupportsCompare      tells which records differ from the target's current ones (`--full`)
    SupportsWebhook      verifies the signature of an event the system pushes (a class-level check,
                         so `erphub serve` can verify before any connector is built)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from erphub.connectors.webhooks import Checked
from erphub.core.errors import UnknownEntity
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
    owned_part,
)

__all__ = [
    "Connector",
    "ConnectorBase",
    "ConnectorSettings",
    "Cursor",
    "Direction",
    "EntitySpec",
    "Page",
    "Record",
    "RecordError",
    "SupportsAcknowledge",
    "SupportsCompare",
    "SupportsDelete",
    "SupportsFetch",
    "SupportsWebhook",
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
    # `rate_limit: {shared: true}`: the PostgreSQL store holding the system's one hub-wide bucket.
    shared_limit_url: str | None = None
    # `rate_limit: {endpoints: ...}`: these endpoints' limits replace the connector's `endpoint_rates`.
    endpoint_rates: dict[str, float] = Field(default_factory=dict)
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
    read_lag_s: ClassVar[float]

    def entities(self) -> Mapping[str, EntitySpec]: ...

    def read_changes(self, entity: str, since: Cursor | None, *, page_size: int = 100,
                     until: Cursor | None = None) -> Iterator[Page]:
        """Pages of records changed strictly after `since` (all records when None), oldest first."""
        ...

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        """Deliver a batch; one result per request, in order. Raises only when the whole call failed.

        A request with `key_looked_up` and no `target_id` was looked up by the engine in this batch
        and not found: the connector must not look it up again before creating it.
        """
        ...

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """Target ids of existing records by match-key value (keys not found are absent)."""
        ...

    def key_identity(self, entity: str, key: str) -> str:
        """The form of a match key under which the target tells keys apart: two keys with one identity
        are one record to the target (Kingdee's FNumber ignores case and outer spaces, say)."""
        ...

    def check(self) -> None:
        """Connect, authenticate and read one page; raise a ConnectorError with the reason."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SupportsFetch(Protocol):
    """Optional: current records by id. Two-way pipelines need it to see what the target has now."""

    def fetch(self, entity: str, ids: Sequence[str]) -> dict[str, Record]: ...


@runtime_checkable
class SupportsCompare(Protocol):
    """Optional: which records differ from what the target holds now, so `--full` judges by the target
    (not by our links) and re-sends what someone changed there."""

    def compares(self, entity: str) -> bool:
        """Whether this entity's records can be compared with the target's current ones."""
        ...

    def differing(self, entity: str, batch: Sequence[WriteRequest]) -> set[str]:
        """Source ids of the requests whose target record differs from the request's data, or is gone."""
        ...


@runtime_checkable
class SupportsDelete(Protocol):
    """Optional: a record deleted in the source is deactivated or deleted in this target (`on_delete`)."""

    def delete_modes(self, entity: str) -> frozenset[str]:
        """Which of "deactivate" and "delete" this entity can take (empty: neither)."""
        ...

    def delete(self, entity: str, ids: Sequence[str], *, mode: str) -> list[WriteResult]:
        """One result per id, in order (`source_id` is the target id); a record already gone is ok."""
        ...


@runtime_checkable
class SupportsAcknowledge(Protocol):
    """Optional: a source that learns, after our commit, which of its records were taken and which failed."""

    def acknowledges(self, entity: str) -> bool:
        """Whether this entity (a handshake staging table, say) wants acknowledgements."""
        ...

    def acknowledge(self, entity: str, ids: Sequence[str], *, ok: bool, error: str | None = None) -> int: ...


@runtime_checkable
class SupportsWebhook(Protocol):
    """Optional: the system pushes signed events. A `serve.webhooks` source whose `kind` is this connector's
    kind is verified by `verify_webhook` (a static method: it needs the secret, not a connection).

    `options` carries the source's other settings (`header`, say); build the answer with the helpers
    of `erphub.connectors.webhooks`.
    """

    kind: ClassVar[str]

    @staticmethod
    def verify_webhook(body: bytes, query: Mapping[str, str], headers: Mapping[str, str], secret: str, *,
                       now: float, max_age_s: float, options: Mapping[str, Any]) -> Checked:
        """Ok (with timestamp, nonce, delivery id), bad signature or stale."""
        ...


class ConnectorBase(ABC):
    """What most connectors share: entity lookup with one error, and the owned-fields and key helpers.

    A subclass sets `kind` and `settings_model`, implements `entities`, `read_changes`, `write`,
    `lookup` and `check`, and calls `self.spec(entity)` wherever it needs an entity's spec.
    """

    kind: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]]
    # The default overlap window of incremental reads from this system (a pipeline's `lag_seconds`
    # overrides it): how far behind the saved cursor each run starts reading again, to cover the
    # vendor's clock skew and commit delays. 60 s unless a connector knows better and says why.
    read_lag_s: ClassVar[float] = 60.0
    # The vendor's largest read page and write batch (records per call): a pipeline that sets no
    # `page_size` / `batch_size` uses its source's page and its target's batch maximum. 100 unless a
    # connector names its vendor's documented limit (with the source, in its docstring).
    max_page_size: ClassVar[int] = 100
    max_batch_size: ClassVar[int] = 100
    # The vendor's documented per-endpoint limits (requests a second, by the connector's endpoint
    # name): what `rate_limit: {endpoints: ...}` may replace. Empty when the vendor documents one limit.
    endpoint_rates: ClassVar[Mapping[str, float]] = {}

    @abstractmethod
    def entities(self) -> Mapping[str, EntitySpec]:
        """Every entity this connector offers, by our name for it."""

    def spec(self, entity: str) -> EntitySpec:
        """The spec of `entity`; an UnknownEntity listing the valid names when there is none."""
        specs = self.entities()
        try:
            return specs[entity]
        except KeyError:
            raise UnknownEntity(self.kind, entity, list(specs)) from None

    @staticmethod
    def owned_data(request: WriteRequest) -> dict[str, Any]:
        """What an update may write: only the pipeline's owned fields (all of them when it owns all)."""
        return owned_part(request.data, request.owned_fields)

    @staticmethod
    def request_key(request: WriteRequest, key_field: str | None) -> str | None:
        """The match key of a write: the mapping's key, else the key field's value in the data.

        An empty key counts as none (the mapping produced no value), so the data's value is used.
        """
        for value in (request.key, request.data.get(key_field) if key_field else None):
            if value not in (None, ""):
                return str(value)
        return None

    def max_page(self, entity: str) -> int:
        """Records per read call at most, for this entity (the vendor's documented maximum)."""
        return self.max_page_size

    def max_batch(self, entity: str) -> int:
        """Records per write call at most, for this entity (the vendor's documented maximum)."""
        return self.max_batch_size

    def key_identity(self, entity: str, key: str) -> str:
        """Keys compare exactly (case, width and spaces count) unless a connector says otherwise."""
        return key

    def close(self) -> None:
        """Release connections; by default there are none to release."""
        return None
