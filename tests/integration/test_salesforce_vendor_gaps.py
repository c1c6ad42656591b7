"""Salesforce gaps of vendor-gaps.md: price books, create-only fields, strict collections, describe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from erphub.connectors.base import SystemContext
from erphub.connectors.salesforce import SalesforceConnector, SalesforceSettings
from erphub.core.records import WriteAction, WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.salesforce import create_sandbox, seed_accounts

API = "/services/data/v59.0"


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    sb = create_sandbox(custom_fields={"Account": {"Region__c": "string"}})
    with SandboxServer(sb) as server:
        yield sb, server


def client(server: SandboxServer) -> httpx.Client:
    token = httpx.post(f"{server.base_url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": "sf_demo_client_id",
        "client_secret": "sf_demo_client_secret"}).json()["access_token"]
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"})


def connect(server: SandboxServer, **overrides: Any) -> SalesforceConnector:
    values: dict[str, Any] = {"login_url": server.base_url, "client_id": "sf_demo_client_id",
                              "client_secret": SecretStr("sf_demo_client_secret"), **overrides}
    return SalesforceConnector(SalesforceSettings(**values), SystemContext(name="sf-gaps", read_timeout_s=5))


def standard_entry(sb: SandboxApp, sku: str) -> tuple[str, str]:
    org = sb.state
    product = next(r["Id"] for r in org.objects["Product2"].values() if r["SKU__c"] == sku)
    entry = next(e["Id"] for e in org.objects["PricebookEntry"].values()
                 if e["Product2Id"] == product and e["Pricebook2Id"] == org.standard_pricebook)
    return product, entry


def new_order(sb: SandboxApp, *, pricebook: bool = True) -> str:
    account = sb.state.seed("Account", {"Name": "客户", "CRM_Code__c": "CUS-1"})
    values = {"AccountId": account, "EffectiveDate": "2026-03-01", "Status": "Draft", "Order_No__c": "SO-1"}
    if pricebook:
        values["Pricebook2Id"] = sb.state.standard_pricebook
    return sb.state.seed("Order", values)


# ---- the sandbox refuses what Salesforce refuses -----------------------------------------------


def test_collection_records_without_attributes_are_refused(sandbox: Any) -> None:
    sb, server = sandbox
    with client(server) as http:
        answer = http.patch(f"{API}/composite/sobjects/Account/CRM_Code__c", json={"allOrNone": False, "records": [
            {"Name": "无类型", "CRM_Code__c": "A-1"},
            {"attributes": {"type": "Account"}, "Name": "有类型", "CRM_Code__c": "A-2"}]})
    assert answer.status_code == 200
    first, second = answer.json()
    assert first["success"] is False and first["errors"][0]["statusCode"] == "INVALID_TYPE"
    assert second["success"] is True
    assert sb.state.count("Account", "CRM_Code__c", "A-1") == 0


def test_order_items_need_a_pricebook_entry_not_a_product(sandbox: Any) -> None:
    sb, server = sandbox
    order = new_order(sb)
    product, entry = standard_entry(sb, "P-1001")
    with client(server) as http:
        by_product = http.post(f"{API}/sobjects/OrderItem", json={
            "OrderId": order, "Product2Id": product, "Quantity": 1, "UnitPrice": 5})
        by_entry = http.post(f"{API}/sobjects/OrderItem", json={
            "OrderId": order, "PricebookEntryId": entry, "Quantity": 1, "UnitPrice": 5})
    assert by_product.status_code == 400 and by_product.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert by_entry.status_code == 201
    assert sb.state.get("OrderItem", by_entry.json()["id"])["Product2Id"] == product


def test_items_of_an_order_without_a_price_book_are_refused(sandbox: Any) -> None:
    sb, server = sandbox
    order = new_order(sb, pricebook=False)
    _, entry = standard_entry(sb, "P-1001")
    with client(server) as http:
        answer = http.post(f"{API}/sobjects/OrderItem", json={
            "OrderId": order, "PricebookEntryId": entry, "Quantity": 1, "UnitPrice": 5})
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_create_only_fields_are_refused_on_update(sandbox: Any) -> None:
    sb, server = sandbox
    order = new_order(sb)
    _, entry = standard_entry(sb, "P-1001")
    with client(server) as http:
        item = http.post(f"{API}/sobjects/OrderItem", json={
            "OrderId": order, "PricebookEntryId": entry, "Quantity": 1, "UnitPrice": 5, "Line_Key__c": "L1"}).json()
        resend = http.patch(f"{API}/sobjects/OrderItem/{item['id']}", json={
            "OrderId": order, "PricebookEntryId": entry, "Quantity": 2})
        plain = http.patch(f"{API}/sobjects/OrderItem/{item['id']}", json={"Quantity": 3})
    assert resend.status_code == 400
    assert resend.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert set(resend.json()[0]["fields"]) == {"OrderId", "PricebookEntryId"}
    assert plain.status_code == 204 and sb.state.get("OrderItem", item["id"])["Quantity"] == 3


def test_describe_lists_standard_and_custom_fields_with_their_rules(sandbox: Any) -> None:
    _, server = sandbox
    with client(server) as http:
        account = http.get(f"{API}/sobjects/Account/describe").json()
        item = http.get(f"{API}/sobjects/OrderItem/describe").json()
        objects = http.get(f"{API}/sobjects").json()
    fields = {f["name"]: f for f in account["fields"]}
    assert fields["Region__c"]["custom"] and fields["Region__c"]["updateable"]
    assert fields["CRM_Code__c"]["externalId"] and not fields["SystemModstamp"]["createable"]
    items = {f["name"]: f for f in item["fields"]}
    assert items["OrderId"]["createable"] and not items["OrderId"]["updateable"]
    assert not items["Product2Id"]["createable"]
    assert "Account" in {o["name"] for o in objects["sobjects"]}


def test_a_query_batch_below_200_is_raised_to_200(sandbox: Any) -> None:
    """The REST API guide's Query Options header: batchSize is 200 at least (2,000 at most)."""
    sb, server = sandbox
    seed_accounts(sb.state, 250)
    with client(server) as http:
        first = http.get(f"{API}/query", params={"q": "SELECT Id FROM Account"},
                         headers={"Sforce-Query-Options": "batchSize=3"}).json()
        rest = http.get(first["nextRecordsUrl"], headers={"Sforce-Query-Options": "batchSize=3"}).json()
    assert first["totalSize"] == 250 and len(first["records"]) == 200 and not first["done"]
    assert len(rest["records"]) == 50 and rest["done"]


# ---- the connector prices orders and never re-sends create-only fields -----------------------


ORDER: dict[str, Any] = {
    "Account": {"CRM_Code__c": "CUS-1"}, "EffectiveDate": "2026-03-01", "Status": "Draft",
    "items": [{"Product2": {"SKU__c": "P-1001"}, "Quantity": 2, "UnitPrice": 18.5},
              {"Product2": {"SKU__c": "p-1003"}, "Quantity": 1, "UnitPrice": 1980}],
}


def write(conn: SalesforceConnector, data: dict[str, Any], n: int = 1) -> Any:
    [result] = conn.write("sales_order", [WriteRequest("s1", "SO-9", None, data, f"k{n}")])
    return result


def test_orders_get_the_standard_price_book_and_items_its_entries(sandbox: Any) -> None:
    sb, server = sandbox
    sb.state.seed("Account", {"Name": "客户", "CRM_Code__c": "CUS-1"})
    with closing(connect(server)) as conn:
        created = write(conn, ORDER)
        assert created.ok and created.action is WriteAction.CREATED, created.error
        order = sb.state.get("Order", created.target_id)
        assert order["Pricebook2Id"] == sb.state.standard_pricebook
        items = sorted((i for i in sb.state.objects["OrderItem"].values() if i["OrderId"] == created.target_id),
                       key=lambda i: i["Line_Key__c"])
        assert [i["PricebookEntryId"] for i in items] == [standard_entry(sb, "P-1001")[1],
                                                          standard_entry(sb, "P-1003")[1]]
        ids = [i["Id"] for i in items]
        # Re-upsert with a new quantity: same items, updated, no create-only field re-sent.
        changed = {**ORDER, "items": [{**ORDER["items"][0], "Quantity": 5}, ORDER["items"][1]]}
        again = write(conn, changed, 2)
        assert again.ok and again.action is WriteAction.UPDATED, again.error
        after = sorted((i for i in sb.state.objects["OrderItem"].values() if i["OrderId"] == created.target_id),
                       key=lambda i: i["Line_Key__c"])
        assert [i["Id"] for i in after] == ids and after[0]["Quantity"] == 5


def test_a_configured_price_book_is_used_and_a_missing_entry_is_a_clear_error(sandbox: Any) -> None:
    sb, server = sandbox
    org = sb.state
    org.seed("Account", {"Name": "客户", "CRM_Code__c": "CUS-1"})
    book = org.seed("Pricebook2", {"Name": "Export"})
    product, _ = standard_entry(sb, "P-1001")
    entry = org.seed("PricebookEntry", {"Pricebook2Id": book, "Product2Id": product, "UnitPrice": 17,
                                        "IsActive": True})
    with closing(connect(server, pricebook_id=book)) as conn:
        only_first = write(conn, {**ORDER, "items": ORDER["items"][:1]})
        assert only_first.ok, only_first.error
        assert org.get("Order", only_first.target_id)["Pricebook2Id"] == book
        [item] = [i for i in org.objects["OrderItem"].values() if i["OrderId"] == only_first.target_id]
        assert item["PricebookEntryId"] == entry
        missing = conn.write("sales_order", [WriteRequest("s2", "SO-10", None, ORDER, "k3")])[0]
    assert missing.error is not None and missing.error.code == "NO_PRICEBOOK_ENTRY"
    assert "p-1003" in missing.error.message and book in missing.error.message


def test_any_sobject_can_be_an_entity() -> None:
    sb = create_sandbox(custom_fields={"Product2": {"Family__c": "string"}})
    with SandboxServer(sb) as server, closing(connect(server, objects={"product": {
            "sobject": "Product2", "external_id": "SKU__c", "fields": ["Name", "Family__c", "IsActive"]}})) as conn:
        data = {"Name": "新产品", "Family__c": "仪表", "IsActive": True}
        [created] = conn.write("product", [WriteRequest("p1", "P-9001", None, data, "k")])
        assert created.ok and created.action is WriteAction.CREATED, created.error
        assert sb.state.get("Product2", created.target_id)["Family__c"] == "仪表"
        records = [r for p in conn.read_changes("product", None, page_size=50) for r in p.records]
        assert {r.data["SKU__c"]: r.data["Family__c"] for r in records}["P-9001"] == "仪表"
        assert conn.lookup("product", ["P-9001"]) == {"P-9001": created.target_id}
        assert "Family__c" in conn.discover(["product"])["product"]["fields"]
