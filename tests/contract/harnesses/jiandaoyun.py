"""Contract harness for the jiandaoyun connector against the Jiandaoyun sandbox on loopback.

Entity `customer` (form customer_form, match key customer_code). The sandbox starts with its demo
data (dated 28-30 days back), which the suite's windows never overlap. Capabilities: lost
responses, server-side request times and a secret (the API key). Not EXPIRE_AUTH: Jiandaoyun
authenticates with a static API key, there is no session or token that could be renewed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

from erphub.connectors.base import Connector, SystemContext
from erphub.connectors.jiandaoyun import JiandaoyunConnector, JiandaoyunSettings
from erphub.core.records import WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.jiandaoyun import create_sandbox
from erphub.testing import DISCOVERY, LOG_SECRETS, LOST_RESPONSE, RATE_LIMIT

FORM = "customer_form"
_names = itertools.count()


class JiandaoyunHarness:
    kind = "jiandaoyun"
    entity = "customer"
    capabilities = frozenset({LOST_RESPONSE, RATE_LIMIT, LOG_SECRETS, DISCOVERY})
    capability_reasons: ClassVar[dict[str, str]] = {
        "expire_auth": "Jiandaoyun authenticates with a static API key: there is no session or token to renew",
        "line_identity": "Jiandaoyun sub-form rows are replaced whole by data/update (jiandaoyun.md); the CRM "
        "is the order's source here, never an order target whose lines the ERP extended",
    }
    custom_field = "ct_region"  # a widget added to the sandbox's customer form (make_harness)

    def __init__(self, sandbox: SandboxApp, server: SandboxServer) -> None:
        self.sandbox = sandbox
        self.server = server
        self.secret_values: Sequence[str] = (sandbox.credentials["api_key"],)
        self._seeded = itertools.count(1)

    @property
    def state(self) -> Any:
        return self.sandbox.state

    def connector(self, *, rate_limit_per_second: float | None = None) -> Connector:
        settings = JiandaoyunSettings(
            base_url=self.server.base_url,
            app_id=self.sandbox.credentials["app_id"],
            api_key=self.sandbox.credentials["api_key"],  # type: ignore[arg-type]
            extra_fields={"customer": [self.custom_field]},
        )
        context = SystemContext(
            name=f"jiandaoyun-contract-{next(_names)}",
            rate_limit_per_second=rate_limit_per_second,
            read_timeout_s=5.0,
            max_attempts=5,
            max_retry_seconds=20.0,
        )
        return JiandaoyunConnector(settings, context)

    def seed(self, count: int, *, updated_at: datetime) -> list[str]:
        ids = []
        for _ in range(count):
            n = next(self._seeded)
            row = {"customer_code": f"CT-SEED-{n:06d}", "customer_name": f"合约测试客户{n}", "status": "正式"}
            ids.append(self.state.insert_plain(FORM, row, at=updated_at))
        return ids

    def custom_value(self, key: str) -> Any:
        found = self.state.find(FORM, "customer_code", key)
        return found[0].get(self.custom_field) if found else None

    def write_request(self, n: int, *, key: str, target_id: str | None = None) -> WriteRequest:
        data = {
            "customer_code": key,
            "customer_name": f"上海合约{n}号精密机械有限公司",
            "status": "正式",
            "outstanding_balance": float(n),
            "address": {"province": "上海市", "city": "上海市", "district": "浦东新区", "detail": f"张江路{n}号"},
        }
        return WriteRequest(
            source_id=f"src-{key}", key=key, target_id=target_id, data=data, idempotency_key=f"contract:{key}:{n}"
        )

    def bad_write_request(self, n: int, *, key: str) -> WriteRequest:
        # A number field given text: the form refuses this record alone.
        request = self.write_request(n, key=key)
        data = {**request.data, "outstanding_balance": "一百万"}
        return WriteRequest(request.source_id, key, None, data, request.idempotency_key)

    def count_with_key(self, key: str) -> int:
        return len(self.state.find(FORM, "customer_code", key))

    def expire_auth(self) -> None:
        # The nearest thing a static key has: the next request is refused as 8301.
        self.sandbox.faults.expire_session(1)

    def lose_next_write_response(self) -> None:
        self.sandbox.faults.lose_next_response("data/batch_create")

    def request_times(self) -> list[float]:
        return self.sandbox.log.times()

    def page_size_hint(self) -> int:
        return 3

    def extra(self) -> dict[str, Any]:
        return {"sandbox": self.sandbox, "base_url": self.server.base_url}


@contextmanager
def make_harness() -> Iterator[JiandaoyunHarness]:
    sandbox = create_sandbox(custom_fields={FORM: {JiandaoyunHarness.custom_field: "text"}})
    with SandboxServer(sandbox) as server:
        yield JiandaoyunHarness(sandbox, server)
