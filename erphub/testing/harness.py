"""What the contract suite (`erphub.testing.contract`) needs from a connector's test harness.

A harness starts the connector's server (a sandbox on loopback, a real system, a database) and
satisfies `ContractHarness`. In this repository each connector ships
`tests/contract/harnesses/<kind>.py` with a `make_harness()` context manager, and
`tests/contract/conftest.py` runs the suite over every one it finds; a connector kept elsewhere
gives the suite a `harness` fixture of its own (see `erphub.testing.contract`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from erphub.connectors.base import Connector
from erphub.core.records import WriteRequest

# Capabilities a harness may declare. The suite skips a check only when the system really cannot
# do it (a SQL table has no auth to renew), and says why in the skip reason.
EXPIRE_AUTH = "expire_auth"  # server can invalidate the session/token mid-run
LOST_RESPONSE = "lost_response"  # server can apply a write but drop its response (client times out)
RATE_LIMIT = "rate_limit"  # server records request times so the suite can measure the rate
LOG_SECRETS = "log_secrets"  # the connector has a secret the suite can look for in logs
DISCOVERY = "discovery"  # the server has a custom field on `entity` the connector discovers and moves
LINE_IDENTITY = "line_identity"  # an order entity whose lines keep their ids in the server across updates


# Optional: a harness may set `capability_reasons: dict[str, str]` (capability -> why the system
# cannot do it); the suite puts that sentence in the skip reason.
#
# With DISCOVERY the harness also offers (see `DiscoveryHarness`): `custom_field`, the name of a field
# the harness configured on the server for `entity` (a Jiandaoyun widget, a Salesforce `__c`, a Kingdee
# `F_` field, a column), and `custom_value(key)`, that field's value on the server for the record with
# this key. With LINE_IDENTITY (`LineHarness`): `order_entity`, `order_request(n, key, quantities,
# target_id)` (an order with one line per quantity) and `line_ids(target_id)`, the server's line ids in order.


class DiscoveryHarness(Protocol):
    custom_field: str

    def custom_value(self, key: str) -> Any: ...


class LineHarness(Protocol):
    order_entity: str

    def order_request(self, n: int, *, key: str, quantities: Sequence[int], target_id: str | None = None
                      ) -> WriteRequest: ...

    def line_ids(self, target_id: str) -> list[str]: ...


class ContractHarness(Protocol):
    kind: str
    entity: str  # an entity this connector can both read and write
    capabilities: frozenset[str]
    secret_values: Sequence[str]  # secret values configured for the connector (for the leak check)

    def connector(self, *, rate_limit_per_second: float | None = None) -> Connector:
        """A fresh connector pointed at the server. Closing it is the suite's job."""
        ...

    def seed(self, count: int, *, updated_at: datetime) -> list[str]:
        """Create `count` records directly on the server, all with this change timestamp; their ids."""
        ...

    def write_request(self, n: int, *, key: str, target_id: str | None = None) -> WriteRequest:
        """A valid write of record number n with match key `key`."""
        ...

    def bad_write_request(self, n: int, *, key: str) -> WriteRequest:
        """A write the server refuses for this record alone (a validation failure)."""
        ...

    def count_with_key(self, key: str) -> int:
        """How many records on the server carry this match key (server-side truth)."""
        ...

    def expire_auth(self) -> None:
        """Invalidate the connector's current session or token on the server side."""
        ...

    def lose_next_write_response(self) -> None:
        """The next write request is applied by the server but the client never gets the answer."""
        ...

    def request_times(self) -> list[float]:
        """Server-side monotonic arrival times of every request so far."""
        ...

    def page_size_hint(self) -> int:
        """A small page size the connector accepts, used to build page-boundary cases."""
        ...

    def extra(self) -> dict[str, Any]: ...
