"""Salesforce entities: the sObjects and fields the hub reads and writes, and record conversion."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from erphub.core.records import Direction, EntitySpec

BOTH = frozenset({Direction.READ, Direction.WRITE})
SYSTEM_READ_ONLY = frozenset({"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"})

ACCOUNT_FIELDS = (
    "Name",
    "AccountNumber",
    "Phone",
    "Website",
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "BillingCountry",
    "Type",
    "Industry",
    "Description",
    "CurrencyIsoCode",
    "CRM_Code__c",
    "ERP_Number__c",
    "Credit_Code__c",
    "Short_Name__c",
    "Customer_Group__c",
    "Salesperson__c",
    "Contact_Name__c",
    "Email__c",
    "Account_Status__c",
    "Outstanding_Balance__c",
    "SystemModstamp",
)
OPPORTUNITY_FIELDS = (
    "Name",
    "AccountId",
    "StageName",
    "CloseDate",
    "Amount",
    "CurrencyIsoCode",
    "Description",
    "Opp_No__c",
    "Salesperson__c",
    "SystemModstamp",
)
ORDER_FIELDS = (
    "AccountId",
    "EffectiveDate",
    "Status",
    "CurrencyIsoCode",
    "Description",
    "Order_No__c",
    "Salesperson__c",
    "Delivery_Status__c",
    "Shipped_Date__c",
    "Pricebook2Id",
    "OrderNumber",
    "TotalAmount",
    "SystemModstamp",
)
ORDER_ITEM_FIELDS = (
    "OrderId",
    "Quantity",
    "UnitPrice",
    "TotalPrice",
    "Description",
    "Line_Key__c",
    "Tax_Rate__c",
    "Unit__c",
    "Shipped_Quantity__c",
    "PricebookEntryId",
)
ORDER_READ_ONLY = frozenset({"OrderNumber", "TotalAmount"})
ITEM_READ_ONLY = frozenset({"TotalPrice", "OrderId"})
ITEMS = "items"


def entity_specs(account_ext: str, opportunity_ext: str, order_ext: str, item_ext: str) -> dict[str, EntitySpec]:
    return {
        "customer": EntitySpec(
            "customer",
            "Account",
            BOTH,
            frozenset({*ACCOUNT_FIELDS, account_ext}),
            account_ext,
            description="Account, upserted by external id",
        ),
        "opportunity": EntitySpec(
            "opportunity",
            "Opportunity",
            BOTH,
            frozenset({*OPPORTUNITY_FIELDS, opportunity_ext, "Account"}),
            opportunity_ext,
            description="Opportunity; Account as {ExtId: value} reference",
        ),
        "sales_order": EntitySpec(
            "sales_order",
            "Order",
            BOTH,
            frozenset({*ORDER_FIELDS, order_ext, "Account", ITEMS}),
            order_ext,
            {ITEMS: frozenset({*ORDER_ITEM_FIELDS, item_ext, "Product2"})},
            description="Order with its OrderItems",
        ),
    }


def soql_datetime(value: datetime) -> str:
    """A SOQL dateTime literal (unquoted), UTC with milliseconds."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def soql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def parse_datetime(value: str) -> datetime:
    """`2024-01-01T00:00:00.000+0000` (the REST API's dateTime form) as an aware UTC datetime."""
    text = value.replace("Z", "+0000")
    fmt = "%Y-%m-%dT%H:%M:%S.%f%z" if "." in text else "%Y-%m-%dT%H:%M:%S%z"
    return datetime.strptime(text, fmt).astimezone(UTC)


def strip_attributes(value: Any) -> Any:
    """A query record without `attributes` (also inside parent relationships)."""
    if isinstance(value, dict):
        return {k: strip_attributes(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [strip_attributes(v) for v in value]
    return value


def jsonable(value: Any) -> Any:
    """Mapping output may hold Decimals, dates and datetimes; the wire wants JSON numbers and text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def to_wire(
    sobject: str, data: dict[str, Any], ext_field: str, key: str, drop: frozenset[str] = frozenset()
) -> dict[str, Any]:
    body = {k: v for k, v in data.items() if k not in SYSTEM_READ_ONLY and k not in drop}
    body[ext_field] = key
    return {"attributes": {"type": sobject}, **jsonable(body)}
