"""Yonyou entities: their declared fields and the conversion between wire rows and record data.

Record data uses the save payload's own names (as Kingdee records use the Save `Model` shape):
references (`agentId`, `salesOrgId`, `productId`, …) carry **codes**, which the open API
accepts in place of ids, so a mapping never needs a Yonyou internal id. Multilingual names read
as their simplified-Chinese text and may be written as a string or a `{zh_CN, en_US, zh_TW}` dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from erphub.core.records import Direction, EntitySpec

SHANGHAI = ZoneInfo("Asia/Shanghai")
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
BOTH = frozenset({Direction.READ, Direction.WRITE})

CUSTOMER_FIELDS = frozenset(
    {
        "code",
        "name",
        "shortname",
        "createOrg",
        "customerClass",
        "enterpriseName",
        "creditCode",
        "contactName",
        "contactTel",
        "email",
        "address",
        "stopStatus",
        "pubts",
    }
)
ORDER_FIELDS = frozenset(
    {
        "code",
        "vouchdate",
        "salesOrgId",
        "settlementOrgId",
        "transactionTypeId",
        "agentId",
        "corpContact",
        "orderPrices!currency",
        "orderPrices!natCurrency",
        "orderPrices!exchRate",
        "orderPrices!exchangeRateType",
        "orderPrices!taxInclusive",
        "payMoney",
        "memo",
        "status",
        "pubts",
        "orderDetails",
    }
)
ORDER_LINE_FIELDS = frozenset(
    {
        "productId",
        "qty",
        "masterUnitId",
        "oriTaxUnitPrice",
        "oriUnitPrice",
        "oriSum",
        "taxId",
        "taxRate",
        "stockOrgId",
        "consignTime",
        "sendQty",
        "lineno",
    }
)
RECEIPT_FIELDS = frozenset(
    {
        "code",
        "vouchdate",
        "financeOrg",
        "customer",
        "currency",
        "oriSum",
        "settleMode",
        "srcBillNo",
        "memo",
        "pubts",
    }
)
READ_ONLY = frozenset({"pubts", "status", "id"})
LINE_READ_ONLY = frozenset({"taxRate", "sendQty", "lineno"})


def entity_specs(receipt_path: str) -> dict[str, EntitySpec]:
    return {
        "customer": EntitySpec(
            "customer",
            "digitalModel/merchant",
            BOTH,
            CUSTOMER_FIELDS,
            "code",
            description="客户档案 (merchant)",
        ),
        "sales_order": EntitySpec(
            "sales_order",
            "sd/voucherorder",
            BOTH,
            ORDER_FIELDS,
            "code",
            {"orderDetails": ORDER_LINE_FIELDS},
            description="销售订单 with its lines",
        ),
        "receipt": EntitySpec(
            "receipt",
            receipt_path.strip("/").removeprefix("yonbip/"),
            BOTH,
            RECEIPT_FIELDS,
            "code",
            description="收款单 [assumed API]",
        ),
    }


# ---- time -------------------------------------------------------------------------------
def parse_pubts(value: Any) -> datetime:
    """A Yonyou local timestamp as an aware datetime (UTC)."""
    return datetime.strptime(str(value), TS_FORMAT).replace(tzinfo=SHANGHAI).astimezone(ZoneInfo("UTC"))


def format_pubts(value: datetime) -> str:
    """An aware datetime as Yonyou local time, floored to the second (pubts has no sub-seconds)."""
    return value.astimezone(SHANGHAI).strftime(TS_FORMAT)


# ---- wire -> data -----------------------------------------------------------------------
def zh(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("simplifiedName") or value.get("zh_CN")
    return value


def _code(row: dict[str, Any], key: str) -> Any:
    """A reference's code: the `<key>_code` companion when the row has it, else the value itself."""
    value = row.get(f"{key}_code")
    return value if value is not None else row.get(key)


def customer_data(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": row.get("code"),
        "name": zh(row.get("name")),
        "shortname": zh(row.get("shortname")),
        "createOrg": row.get("createOrgCode", row.get("createOrgId")),
        "customerClass": row.get("customerClassCode", row.get("customerClassId")),
        "enterpriseName": row.get("enterpriseName"),
        "creditCode": row.get("creditCode"),
        "contactName": row.get("contactName"),
        "contactTel": row.get("contactTel"),
        "email": row.get("email"),
        "address": row.get("address"),
        "stopStatus": row.get("stopStatus"),
        "pubts": row.get("pubts"),
    }


_PRICE_KEYS = ("currency", "natCurrency", "exchRate", "exchangeRateType", "taxInclusive")


def order_data(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One order from its list rows (one row per line) or from a detail answer (one row with lines)."""
    head = rows[0]
    raw_prices = head.get("orderPrices")
    prices: dict[str, Any] = raw_prices if isinstance(raw_prices, dict) else {}
    data: dict[str, Any] = {
        "code": head.get("code"),
        "vouchdate": head.get("vouchdate"),
        "salesOrgId": _code(head, "salesOrgId"),
        "settlementOrgId": _code(head, "settlementOrgId"),
        "transactionTypeId": _code(head, "transactionTypeId"),
        "agentId": _code(head, "agentId"),
        "corpContact": _code(head, "corpContact"),
        **{f"orderPrices!{k}": head.get(f"orderPrices!{k}", prices.get(k)) for k in _PRICE_KEYS},
        "payMoney": head.get("payMoney"),
        "memo": head.get("memo"),
        "status": head.get("status"),
        "pubts": head.get("pubts"),
    }
    lines = head["orderDetails"] if isinstance(head.get("orderDetails"), list) else rows
    data["orderDetails"] = [_line_data(line) for line in lines]
    return data


def _line_data(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "productId": _code(line, "productId"),
        "qty": line.get("qty"),
        "masterUnitId": _code(line, "masterUnitId"),
        "oriTaxUnitPrice": line.get("oriTaxUnitPrice"),
        "oriUnitPrice": line.get("oriUnitPrice"),
        "oriSum": line.get("oriSum"),
        "taxId": _code(line, "taxId"),
        "taxRate": line.get("taxRate"),
        "stockOrgId": _code(line, "stockOrgId"),
        "consignTime": line.get("consignTime"),
        "sendQty": line.get("sendQty"),
        "lineno": line.get("lineno"),
    }


def receipt_data(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": row.get("code"),
        "vouchdate": row.get("vouchdate"),
        "financeOrg": _code(row, "financeOrg"),
        "customer": _code(row, "customer"),
        "currency": row.get("currency"),
        "oriSum": row.get("oriSum"),
        "settleMode": _code(row, "settleMode"),
        "srcBillNo": row.get("srcBillNo"),
        "memo": row.get("memo"),
        "pubts": row.get("pubts"),
    }


# ---- data -> wire -----------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """Mapping output may hold Decimals and datetimes; the wire wants JSON numbers and text."""
    if isinstance(value, Decimal):
        return _json_number(value)
    if isinstance(value, datetime):
        return format_pubts(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _multilang(value: Any) -> Any:
    return {"zh_CN": value} if isinstance(value, str) else value


def customer_payload(data: dict[str, Any], status: str, target_id: str | None) -> dict[str, Any]:
    payload = {k: v for k, v in data.items() if k not in READ_ONLY and v is not None}
    for key in ("name", "shortname"):
        if key in payload:
            payload[key] = _multilang(payload[key])
    payload["_status"] = status
    if target_id is not None:
        payload["id"] = target_id
    result: dict[str, Any] = jsonable(payload)
    return result


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _json_number(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def order_payload(
    data: dict[str, Any],
    status: str,
    resubmit_key: str,
    target_id: str | None,
    existing_line_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """A singleSave `data`: lines are Inserted; on Update the existing lines are Deleted first."""
    payload = {k: v for k, v in data.items() if k not in READ_ONLY and k != "orderDetails" and v is not None}
    lines: list[dict[str, Any]] = [{"id": i, "_status": "Delete"} for i in existing_line_ids]
    total = Decimal(0)
    for line in data.get("orderDetails") or []:
        row = {k: v for k, v in line.items() if k not in LINE_READ_ONLY and v is not None}
        qty = Decimal(str(row.get("qty", 0)))
        price = Decimal(str(row.get("oriTaxUnitPrice", 0)))
        amount = Decimal(str(row["oriSum"])) if row.get("oriSum") is not None else _money(qty * price)
        row["oriSum"] = _json_number(amount)
        total += amount
        row["_status"] = "Insert"
        lines.append(row)
    payload["orderDetails"] = lines
    if payload.get("payMoney") is None:
        payload["payMoney"] = _json_number(total)
    payload["_status"] = status
    payload["resubmitCheckKey"] = resubmit_key
    if target_id is not None:
        payload["id"] = target_id
    result: dict[str, Any] = jsonable(payload)
    return result


def receipt_payload(
    data: dict[str, Any], status: str, resubmit_key: str, target_id: str | None
) -> dict[str, Any]:
    payload = {k: v for k, v in data.items() if k not in READ_ONLY and v is not None}
    payload["_status"] = status
    payload["resubmitCheckKey"] = resubmit_key
    if target_id is not None:
        payload["id"] = target_id
    result: dict[str, Any] = jsonable(payload)
    return result
