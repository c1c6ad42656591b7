"""Contract harness for the salesforce connector against the Salesforce sandbox on loopback.

Entity `customer` (Account, upserted by `CRM_Code__c`). The sandbox answers queries in batches of
the requested size (min_batch_size=1), so pages cross `nextRecordsUrl` boundaries. Capabilities: all
four — the sandbox can end every session (401 INVALID_SESSION_ID), apply a collection upsert and drop
its answer, log request arrival times, and the connector has a client secret.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from erphub.connectors.base import Connector, SystemContext
from erphub.connectors.salesforce import SalesforceConnector, SalesforceSettings
from erphub.core.records import WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.salesforce import create_sandbox
from erphub.testing import DISCOVERY, EXPIRE_AUTH, LINE_IDENTITY, LOG_SECRETS, LOST_RESPONSE, RATE_LIMIT

UPSERT_PATH = "composite/sobjects/Account/CRM_Code__c"


class SalesforceHarness:
    kind = "salesforce"
    entity = "customer"
    capabilities = frozenset({EXPIRE_AUTH, LOST_RESPONSE, RATE_LIMIT, LOG_SECRETS, DISCOVERY, LINE_IDENTITY})
    custom_field = "CT_Region__c"  # configured on the sandbox org's Account (make_harness)
    order_entity = "sales_order"

    def __init__(self, sandbox: SandboxApp, server: SandboxServer) -> None:
        self.sandbox = sandbox
        self.server = server
        self.creds = sandbox.credentials
        self.secret_values: Sequence[str] = (self.creds["client_secret"],)
        self._n = itertools.count(1)
        self._names = itertools.count(1)

    def connector(self, *, rate_limit_per_second: float | None = None) -> Connector:
        settings = SalesforceSettings(
            login_url=self.server.base_url,
            client_id=self.creds["client_id"],
            client_secret=SecretStr(self.creds["client_secret"]),
            extra_fields={"customer": [self.custom_field]},
        )
        context = SystemContext(
            name=f"salesforce-contract-{next(self._names)}",
            rate_limit_per_second=rate_limit_per_second,
            read_timeout_s=5.0,
            max_attempts=5,
            max_retry_seconds=20.0,
            secrets=tuple(self.secret_values),
        )
        return SalesforceConnector(settings, context)

    def seed(self, count: int, *, updated_at: datetime) -> list[str]:
        org = self.sandbox.state
        return [
            org.seed("Account", {"Name": f"种子客户{n}", "CRM_Code__c": f"SEED-{n:05d}"}, modstamp=updated_at)
            for n in (next(self._n) for _ in range(count))
        ]

    def write_request(self, n: int, *, key: str, target_id: str | None = None) -> WriteRequest:
        data = {"Name": f"契约客户{n}", "Phone": "13800000000", "CurrencyIsoCode": "CNY"}
        return WriteRequest(
            source_id=f"src-{n}", key=key, target_id=target_id, data=data, idempotency_key=f"contract:{key}:{n}"
        )

    def bad_write_request(self, n: int, *, key: str) -> WriteRequest:
        data = {"Name": "名" * 300}  # STRING_TOO_LONG on this record only
        return WriteRequest(
            source_id=f"src-{n}", key=key, target_id=None, data=data, idempotency_key=f"contract:{key}:{n}:bad"
        )

    def custom_value(self, key: str) -> Any:
        org = self.sandbox.state
        found = [r for r in org.objects["Account"].values() if r.get("CRM_Code__c") == key]
        return found[0].get(self.custom_field) if found else None

    def order_request(self, n: int, *, key: str, quantities: Sequence[int], target_id: str | None = None
                      ) -> WriteRequest:
        org = self.sandbox.state
        if not org.count("Account", "CRM_Code__c", "CT-ORDER-CUSTOMER"):
            org.seed("Account", {"Name": "契约订单客户", "CRM_Code__c": "CT-ORDER-CUSTOMER"})
        data = {"Account": {"CRM_Code__c": "CT-ORDER-CUSTOMER"}, "EffectiveDate": "2026-03-01", "Status": "Draft",
                "items": [{"Product2": {"SKU__c": f"P-{1001 + i}"}, "Quantity": qty, "UnitPrice": 10}
                          for i, qty in enumerate(quantities)]}
        return WriteRequest(source_id=f"order-{n}", key=key, target_id=target_id, data=data,
                            idempotency_key=f"contract:order:{key}:{len(quantities)}")

    def line_ids(self, target_id: str) -> list[str]:
        items = [i for i in self.sandbox.state.objects["OrderItem"].values()
                 if i["OrderId"] == target_id and not i["IsDeleted"]]
        return [i["Id"] for i in sorted(items, key=lambda i: i["Line_Key__c"])]

    def count_with_key(self, key: str) -> int:
        return int(self.sandbox.state.count("Account", "CRM_Code__c", key))

    def expire_auth(self) -> None:
        self.sandbox.extra["sessions"].expire_all()

    def lose_next_write_response(self) -> None:
        self.sandbox.faults.lose_next_response(UPSERT_PATH)

    def request_times(self) -> list[float]:
        return self.sandbox.log.times()

    def page_size_hint(self) -> int:
        return 3

    def extra(self) -> dict[str, Any]:
        return {"base_url": self.server.base_url}


@contextmanager
def make_harness() -> Iterator[SalesforceHarness]:
    sandbox = create_sandbox(min_batch_size=1, custom_fields={"Account": {SalesforceHarness.custom_field: "string"}})
    with SandboxServer(sandbox) as server:
        yield SalesforceHarness(sandbox, server)
