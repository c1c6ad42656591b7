"""Contract harness for the kingdee connector against the Kingdee sandbox on loopback.

Entity `customer` (BD_Customer, match key FNumber). The sandbox starts with reference data only
(no seeded customers or receipts), so the suite's counts are its own. Capabilities: all four —
the sandbox can drop every session (the connector must log in again), apply a BatchSave and drop
its answer, log request arrival times, and the connector has a password to leak.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from erphub.connectors.base import Connector, SystemContext
from erphub.connectors.kingdee import KingdeeConnector, KingdeeSettings
from erphub.core.records import WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.kingdee import SHANGHAI_ZONE, create_sandbox, endpoint
from erphub.testing import DISCOVERY, EXPIRE_AUTH, LINE_IDENTITY, LOG_SECRETS, LOST_RESPONSE, RATE_LIMIT


def kingdee_local(moment: datetime) -> datetime:
    """An instant as Kingdee stores FModifyDate: Asia/Shanghai wall time, no zone, milliseconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(SHANGHAI_ZONE).replace(tzinfo=None)
    return local.replace(microsecond=local.microsecond // 1000 * 1000)


class KingdeeHarness:
    kind = "kingdee"
    entity = "customer"
    capabilities = frozenset({EXPIRE_AUTH, LOST_RESPONSE, RATE_LIMIT, LOG_SECRETS, DISCOVERY, LINE_IDENTITY})
    custom_field = "F_CT_Region"  # configured on the sandbox's BD_Customer (make_harness)
    order_entity = "sales_order"

    def __init__(self, sandbox: SandboxApp, server: SandboxServer) -> None:
        self.sandbox = sandbox
        self.server = server
        self.creds = sandbox.credentials
        self.secret_values: Sequence[str] = (self.creds["password"],)
        self._seeded = 0

    @property
    def store(self) -> Any:
        return self.sandbox.state.store

    def settings(self) -> KingdeeSettings:
        return KingdeeSettings.model_validate(
            {
                "server_url": f"{self.server.base_url}/k3cloud/",
                "acct_id": self.creds["acct_id"],
                "username": self.creds["username"],
                "auth_mode": "password",
                "password": self.creds["password"],
                "custom_fields": {"customer": [self.custom_field]},
            }
        )

    def connector(self, *, rate_limit_per_second: float | None = None) -> Connector:
        context = SystemContext(
            name=f"kingdee-contract-{id(self)}",
            rate_limit_per_second=rate_limit_per_second,
            read_timeout_s=5.0,
            max_attempts=5,
            max_retry_seconds=20.0,
            secrets=tuple(self.secret_values),
        )
        return KingdeeConnector(self.settings(), context)

    def seed(self, count: int, *, updated_at: datetime) -> list[str]:
        stamp = kingdee_local(updated_at)
        ids = []
        for _ in range(count):
            self._seeded += 1
            n = self._seeded
            ids.append(
                str(
                    self.store.insert(
                        "BD_Customer",
                        {
                            "FNumber": f"SEED-{n:06d}",
                            "FName": f"种子客户{n:06d}有限公司",
                            "FCreateOrgId": {"FNumber": "100"},
                            "FTRADINGCURRID": {"FNumber": "PRE001"},
                        },
                        modify_date=stamp,
                    )
                )
            )
        return ids

    def write_request(self, n: int, *, key: str, target_id: str | None = None) -> WriteRequest:
        data = {
            "FNumber": key,
            "FName": f"契约测试客户{n}有限公司",
            "FShortName": f"契约{n}",
            "FTRADINGCURRID": {"FNumber": "PRE001"},
            "FTEL": f"1380000{n:04d}",
            "FGroup": {"FNumber": "SMB"},
            "FSELLER": {"FNumber": "S001"},
        }
        return WriteRequest(
            source_id=f"src-{n}", key=key, target_id=target_id, data=data, idempotency_key=f"contract:{n}:{key}"
        )

    def bad_write_request(self, n: int, *, key: str) -> WriteRequest:
        request = self.write_request(n, key=key)
        data = {**request.data, "FTRADINGCURRID": {"FNumber": "NO-SUCH-CURRENCY"}}
        return WriteRequest(
            source_id=request.source_id, key=key, target_id=None, data=data, idempotency_key=request.idempotency_key
        )

    def custom_value(self, key: str) -> Any:
        doc = self.store.get("BD_Customer", number=key)
        return None if doc is None else doc.get(self.custom_field)

    def order_request(self, n: int, *, key: str, quantities: Sequence[int], target_id: str | None = None
                      ) -> WriteRequest:
        if self.store.get("BD_Customer", number="CT-ORDER-CUSTOMER") is None:
            self.store.insert("BD_Customer", {
                "FNumber": "CT-ORDER-CUSTOMER", "FName": "契约订单客户", "FCreateOrgId": {"FNumber": "100"},
                "FTRADINGCURRID": {"FNumber": "PRE001"}})
        data = {
            "FBillNo": key, "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01",
            "FCustId": {"FNumber": "CT-ORDER-CUSTOMER"}, "FSalerId": {"FNumber": "S001"},
            "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
            "FSaleOrderEntry": [{"FMaterialId": {"FNumber": f"1.01.{i + 1:03d}"}, "FUnitID": {"FNumber": "Pcs"},
                                 "FQty": qty, "FTaxPrice": 10} for i, qty in enumerate(quantities)],
        }
        return WriteRequest(source_id=f"order-{n}", key=key, target_id=target_id, data=data,
                            idempotency_key=f"contract:order:{key}:{len(quantities)}")

    def line_ids(self, target_id: str) -> list[str]:
        doc = self.store.get("SAL_SaleOrder", doc_id=int(target_id))
        return [str(row["FEntryID"]) for row in doc["FSaleOrderEntry"]]

    def count_with_key(self, key: str) -> int:
        return int(self.store.count_number("BD_Customer", key))

    def expire_auth(self) -> None:
        self.sandbox.state.sessions.expire_all()

    def lose_next_write_response(self) -> None:
        self.sandbox.faults.lose_next_response(endpoint("BatchSave"))

    def request_times(self) -> list[float]:
        return self.sandbox.log.times()

    def page_size_hint(self) -> int:
        return 5

    def extra(self) -> dict[str, Any]:
        return {"sandbox": self.sandbox, "base_url": self.server.base_url}


@contextmanager
def make_harness() -> Iterator[KingdeeHarness]:
    sandbox = create_sandbox(seed_customers=0, seed_receipts=0,
                             custom_fields={"BD_Customer": {KingdeeHarness.custom_field: "text"}})
    with SandboxServer(sandbox) as server:  # the SandboxApp: serve() unwraps the fault middleware
        yield KingdeeHarness(sandbox, server)
