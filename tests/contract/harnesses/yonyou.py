"""Contract harness for the yonyou connector against the Yonyou sandbox on loopback.

Entity `customer` (客户档案, match key `code`). Capabilities: all four — the sandbox can forget every
token (the connector must fetch a new signed one), apply a merchant/save and drop its answer (the
connector re-checks by code), log request arrival times, and the connector has an app secret.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

from pydantic import SecretStr

from erphub.connectors.base import Connector, SystemContext
from erphub.connectors.yonyou import YonyouConnector, YonyouSettings
from erphub.core.records import WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.yonyou import create_sandbox
from erphub.testing import EXPIRE_AUTH, LINE_IDENTITY, LOG_SECRETS, LOST_RESPONSE, RATE_LIMIT


class YonyouHarness:
    kind = "yonyou"
    entity = "customer"
    capabilities = frozenset({EXPIRE_AUTH, LOST_RESPONSE, RATE_LIMIT, LOG_SECRETS, LINE_IDENTITY})
    order_entity = "sales_order"
    capability_reasons: ClassVar[dict[str, str]] = {
        "discovery": "Yonyou publishes no metadata API: discovery reports the documented field lists, so there "
                     "is no custom field to find",
    }

    def __init__(self, sandbox: SandboxApp, server: SandboxServer) -> None:
        self.sandbox = sandbox
        self.server = server
        self.creds = sandbox.credentials
        self.secret_values: Sequence[str] = (self.creds["app_secret"],)
        self._n = itertools.count(1)
        self._names = itertools.count(1)

    def connector(self, *, rate_limit_per_second: float | None = None) -> Connector:
        settings = YonyouSettings(
            tenant_id=self.creds["tenant_id"],
            app_key=self.creds["app_key"],
            app_secret=SecretStr(self.creds["app_secret"]),
            discovery_url=self.server.base_url,
            default_rate_per_second=200.0,
        )
        context = SystemContext(
            name=f"yonyou-contract-{next(self._names)}",
            rate_limit_per_second=rate_limit_per_second,
            read_timeout_s=5.0,
            max_attempts=5,
            max_retry_seconds=20.0,
            secrets=tuple(self.secret_values),
        )
        return YonyouConnector(settings, context)

    def seed(self, count: int, *, updated_at: datetime) -> list[str]:
        ids = []
        for _ in range(count):
            n = next(self._n)
            row = self.sandbox.state.seed_customer(
                f"SEED-{n:05d}-{uuid.uuid4().hex[:6]}", f"种子客户{n}", pubts=updated_at
            )
            ids.append(str(row["id"]))
        return ids

    def write_request(self, n: int, *, key: str, target_id: str | None = None) -> WriteRequest:
        data = {
            "code": key,
            "name": f"契约客户{n}",
            "createOrg": "100",
            "customerClass": "SMB",
            "contactTel": "13800000000",
        }
        return WriteRequest(
            source_id=f"src-{n}", key=key, target_id=target_id, data=data, idempotency_key=f"contract:{key}:{n}"
        )

    def bad_write_request(self, n: int, *, key: str) -> WriteRequest:
        data = {"code": key, "name": f"坏客户{n}", "createOrg": "100", "customerClass": "NO-SUCH-CLASS"}
        return WriteRequest(
            source_id=f"src-{n}", key=key, target_id=None, data=data, idempotency_key=f"contract:{key}:{n}:bad"
        )

    def order_request(self, n: int, *, key: str, quantities: Sequence[int], target_id: str | None = None
                      ) -> WriteRequest:
        if not self.sandbox.state.count_customers_with_code("CT-ORDER-CUSTOMER"):
            self.sandbox.state.seed_customer("CT-ORDER-CUSTOMER", "契约订单客户")
        data = {"code": key, "vouchdate": "2026-03-01 00:00:00", "salesOrgId": "100", "transactionTypeId": "SO01",
                "agentId": "CT-ORDER-CUSTOMER", "orderPrices!currency": "CNY",
                "orderDetails": [{"productId": f"1.01.{i + 1:03d}", "qty": qty, "oriTaxUnitPrice": 10,
                                  "masterUnitId": "Pcs", "taxId": "VAT13"} for i, qty in enumerate(quantities)]}
        return WriteRequest(source_id=f"order-{n}", key=key, target_id=target_id, data=data,
                            idempotency_key=f"contract:order:{key}:{len(quantities)}")

    def line_ids(self, target_id: str) -> list[str]:
        return [str(line["id"]) for line in self.sandbox.state.orders[int(target_id)]["orderDetails"]]

    def count_with_key(self, key: str) -> int:
        return int(self.sandbox.state.count_customers_with_code(key))

    def expire_auth(self) -> None:
        self.sandbox.extra["tokens"].expire_all()

    def lose_next_write_response(self) -> None:
        self.sandbox.faults.lose_next_response("merchant/save")

    def request_times(self) -> list[float]:
        return self.sandbox.log.times()

    def page_size_hint(self) -> int:
        return 3

    def extra(self) -> dict[str, Any]:
        return {"base_url": self.server.base_url}


@contextmanager
def make_harness() -> Iterator[YonyouHarness]:
    sandbox = create_sandbox()
    with SandboxServer(sandbox) as server:
        yield YonyouHarness(sandbox, server)
