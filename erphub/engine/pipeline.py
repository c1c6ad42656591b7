"""The runtime pieces of one configured pipeline (built by `erphub.runtime.Hub`, driven by a run)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from erphub.connectors.base import Connector
from erphub.engine.twoway import TwoWaySpec
from erphub.mappings.plan import Mapped, Rejected, Skipped


class PlanLike(Protocol):
    """What the engine needs of a compiled mapping (tests pass small stand-ins)."""

    key_field: str | None
    owned_fields: frozenset[str] | None

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped: ...


DEFAULT_SIZE = 100  # records per call of a connector that names no vendor maximum


def vendor_max(connector: object, method: str, entity: str) -> int:
    """`connector.max_batch(entity)` or `max_page(entity)`; a connector without them gets DEFAULT_SIZE."""
    limit = getattr(connector, method, None)
    return max(1, int(limit(entity))) if callable(limit) else DEFAULT_SIZE


@dataclass
class Pipeline:
    """The runtime pieces of one configured pipeline."""

    name: str
    source_system: str
    source_entity: str
    source: Connector
    target_system: str
    target_entity: str
    target: Connector
    plan: PlanLike
    # 0: the vendors' maxima, the target's largest write batch and the source's largest read page
    # (`ConnectorBase.max_batch` / `max_page`; 100 for a connector that names none).
    batch_size: int = 0
    page_size: int = 0
    # Batches written at once (engine.window): the target system's `rate_limit.max_concurrency`.
    write_concurrency: int = 1
    redact: Callable[[str], str] = str
    two_way: TwoWaySpec | None = None
    write_back: tuple[str, str] | None = None  # (source field, "key" | "target_id")
    create_missing: bool = True
    on_delete: str = "ignore"  # ignore | deactivate | delete: what a source deletion does to the target
    # Renewed before a write once a tenth of it has passed (engine.lease); a crashed holder on this host
    # is taken over at once.
    lease_ttl_s: float = 300.0
    lease_wait_s: float = 300.0  # how long a run waits for another run of the same pipeline to finish
    # The overlap window: each incremental run re-reads from `cursor - lag_s`, so a record stamped a
    # little before the cursor (a late commit, a vendor clock behind ours, paging not by time) is still
    # read; links make the re-read idempotent. The runtime sets it from `lag_seconds` or the connector.
    lag_s: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            self.batch_size = vendor_max(self.target, "max_batch", self.target_entity)
        if self.page_size <= 0:
            self.page_size = vendor_max(self.source, "max_page", self.source_entity)

    def lease(self) -> tuple[str, float, float]:
        """What `engine.lease.holding` needs to hold this pipeline: its name, lease TTL and wait."""
        return (self.name, self.lease_ttl_s, self.lease_wait_s)

    @property
    def endpoints(self) -> tuple[str, str, str, str]:
        return (self.source_system, self.source_entity, self.target_system, self.target_entity)

    def key_top(self) -> str:
        """The top-level field that carries the match key: always written with an update."""
        return (self.plan.key_field or "").split(".")[0]
