"""Conformance: the real `simple-salesforce` client against the Salesforce sandbox on loopback.

simple-salesforce builds every URL as `https://{instance}` (api.py: `base_url`, `query_more` with
`identifier_is_url`), whatever scheme `instance_url` has; it keeps the port. The sandbox serves plain
HTTP on 127.0.0.1, so the requests session gets an adapter for that one origin that sends the same
request over http — nothing else about the request changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
)

from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.salesforce import create_sandbox

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class PlainHttpAdapter(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        assert request.url is not None and request.url.startswith("https://127.0.0.1:")
        request.url = "http://" + request.url[len("https://") :]
        return super().send(request, *args, **kwargs)


@pytest.fixture
def sf() -> Iterator[tuple[Salesforce, SandboxApp]]:
    sb = create_sandbox(min_batch_size=1)
    for i in range(7):
        sb.state.seed(
            "Account", {"Name": f"客户{i}", "CRM_Code__c": f"CUS-{i:03d}"}, modstamp=T0 + timedelta(seconds=i // 3)
        )
    with SandboxServer(sb) as server:
        token = httpx.post(
            f"{server.base_url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sf_demo_client_id",
                "client_secret": "sf_demo_client_secret",
            },
        ).json()
        session = requests.Session()
        session.mount(f"https://127.0.0.1:{server.port}", PlainHttpAdapter())
        client = Salesforce(session_id=token["access_token"], instance_url=token["instance_url"], session=session)
        yield client, sb
        session.close()


BATCH_OF_3 = {"Sforce-Query-Options": "batchSize=3"}
SOQL = "SELECT Id, Name, CRM_Code__c, SystemModstamp FROM Account ORDER BY SystemModstamp, Id"


def test_query_and_query_more(sf: Any) -> None:
    client, _ = sf
    first = client.query(SOQL, headers=BATCH_OF_3)
    assert first["totalSize"] == 7 and first["done"] is False and len(first["records"]) == 3
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["records"][0]["attributes"]["type"] == "Account"
    assert first["records"][0]["SystemModstamp"] == "2026-03-01T00:00:00.000+0000"
    second = client.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=BATCH_OF_3)
    assert [r["CRM_Code__c"] for r in second["records"]] == ["CUS-003", "CUS-004", "CUS-005"]
    # query_more by locator id (not URL), the other form simple-salesforce supports
    locator = first["nextRecordsUrl"].rsplit("/", 1)[1]
    assert client.query_more(locator, headers=BATCH_OF_3)["records"] == second["records"]


def test_query_all_follows_every_batch(sf: Any) -> None:
    client, sb = sf
    result = client.query_all(SOQL, headers=BATCH_OF_3)
    assert result["totalSize"] == 7
    paths = [e.path for e in sb.log.entries()]
    assert sum(p.endswith("/query/") for p in paths) == 1 and sum("/query/01g" in p for p in paths) == 2
    assert [r["CRM_Code__c"] for r in result["records"]] == [f"CUS-{i:03d}" for i in range(7)]
    keyset = client.query_all(
        "SELECT Id FROM Account WHERE (SystemModstamp > 2026-03-01T00:00:01.000Z OR "
        "(SystemModstamp = 2026-03-01T00:00:01.000Z AND Id > '" + result["records"][3]["Id"] + "')) "
        "ORDER BY SystemModstamp, Id"
    )
    assert [r["Id"] for r in keyset["records"]] == [r["Id"] for r in result["records"][4:]]


def test_upsert_by_external_id(sf: Any) -> None:
    client, sb = sf
    assert client.Account.upsert("CRM_Code__c/CUS-NEW", {"Name": "新客户"}) == 201
    assert client.Account.upsert("CRM_Code__c/CUS-NEW", {"Name": "新客户2"}) == 200
    record = client.Account.get_by_custom_id("CRM_Code__c", "CUS-NEW")
    assert record["Name"] == "新客户2"
    assert sb.state.count("Account", "CRM_Code__c", "CUS-NEW") == 1
    # Two records with one external id: 300, nothing written.
    sb.state.seed("Account", {"Name": "重复1", "CRM_Code__c": "DUP"})
    sb.state.seed("Account", {"Name": "重复2", "CRM_Code__c": "DUP"})
    with pytest.raises(SalesforceMoreThanOneRecord):
        client.Account.upsert("CRM_Code__c/DUP", {"Name": "x"})
    assert sorted(r["Name"] for r in sb.state.objects["Account"].values() if r["CRM_Code__c"] == "DUP") == [
        "重复1",
        "重复2",
    ]


def test_errors_surface_as_simple_salesforce_exceptions(sf: Any) -> None:
    client, sb = sf
    with pytest.raises(SalesforceMalformedRequest):
        client.query("SELECT Id FROM Account WHERE SystemModstamp > '2026-01-01'")
    sb.extra["sessions"].expire_all()
    with pytest.raises(SalesforceExpiredSession):
        client.query("SELECT Id FROM Account")


def test_describe_and_strict_order_items(sf: Any) -> None:
    client, sb = sf
    described = client.OrderItem.describe()
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["PricebookEntryId"]["createable"] and not fields["PricebookEntryId"]["updateable"]
    assert "Account" in {o["name"] for o in client.describe()["sobjects"]}
    account = sb.state.seed("Account", {"Name": "订单客户", "CRM_Code__c": "CUS-ORD"})
    order = sb.state.seed("Order", {"AccountId": account, "EffectiveDate": "2026-03-01", "Status": "Draft",
                                    "Pricebook2Id": sb.state.standard_pricebook})
    product = next(p["Id"] for p in sb.state.objects["Product2"].values() if p["SKU__c"] == "P-1001")
    with pytest.raises(SalesforceMalformedRequest):  # Product2Id is not createable: a PricebookEntryId is needed
        client.OrderItem.create({"OrderId": order, "Product2Id": product, "Quantity": 1, "UnitPrice": 1})
