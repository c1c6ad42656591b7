"""Yonyou entities: their declared fields and the conversion between wire rows and record data.

Record data uses the save payload's own names (as Kingdee records use the Save `Model` shape):
references (`agentId`, `salesOrgId`, `productId`, …) carry **codes**, which the open API
accepts in place of ids, so a mapping never needs a Yonyou internal id. Multilingual names read
as their simplified-Chinese text and may be written as a string or a `{zh_CN, en_US, zh_TW}` dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from erphub.core.records import Direction, EntitySpec

SHANGHAI = ZoneInfo("Asia/Shanghai")
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
BOTH = frozenset({Direction.READ, Direction.WRITE})
DETAIL_PRICE_KEYS = ("natTaxUnitPrice", "natUnitPrice", "natSum", "natMoney", "natTax", "oriMoney", "oriTax",
                     "discountRate")

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
        "invoiceAgentId",
        "saleDepartmentId",
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
        # Required by singleSave (vendor-gaps.md, Yonyou; the published 销售订单单个保存 page); the
        # connector derives them when the mapping leaves them out (order_payload).
        "iProductAuxUnitId",
        "iProductUnitId",
        "subQty",
        "priceQty",
        "invExchRate",
        "unitExchangeType",
        "orderProductType",
        *(f"orderDetailPrices!{k}" for k in DETAIL_PRICE_KEYS),
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


RECEIPT_DISABLED = (
    "Yonyou receipts (收款单) are disabled: no receipt API is confirmed in Yonyou's published documentation "
    "(the documented sibling is /yonbip/fi/paybill/save, for refunds), so /yonbip/fi/receivebill is a guess; "
    "set receipt_path to the endpoint your tenant documents to enable the entity"
)


def entity_specs(receipt_path: str | None) -> dict[str, EntitySpec]:
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
            (receipt_path or "fi/receivebill").strip("/").removeprefix("yonbip/"),
            BOTH if receipt_path else frozenset(),
            RECEIPT_FIELDS,
            "code",
            description="收款单 [assumed API]" if receipt_path else RECEIPT_DISABLED,
        ),
    }


# ---- time -------------------------------------------------------------------------------
def parse_pubts(value: Any) -> datetime:
    """A Yonyou local timestamp as an aware datetime (UTC)."""
    return datetime.strptime(str(value), TS_FORMAT).replace(tzinfo=SHANGHAI).astimezone(ZoneInfo("UTC"))


def format_pubts(value: datetime) -> str:
    """An aware datetime as Yonyou local time, floored to the second (pubts has no sub-seconds)."""
    return value.astimezone(SHANGHAI).strftime(TS_FORMAT)


def second_before(pubts: str) -> str:
    """The pubts text one second earlier (for "pubts >= T" as the documented `gt`)."""
    moment = datetime.strptime(pubts, TS_FORMAT) - timedelta(seconds=1)
    return moment.strftime(TS_FORMAT)


# ---- wire -> data -----------------------------------------------------------------------
def zh(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("simplifiedName") or value.get("zh_CN")
    return value


def _code(row: dict[str, Any], key: str) -> Any:
    """A reference as its code, which is what mappings write (saves accept id or code alike).

    YonBIP answers name a reference by id with `<key>_name` and `<key>_code` companions (see the
    connector docstring for the sources): the code companion is read when the row has it, the id
    otherwise (the customer's id is then resolved to its code by the connector, `_customer_codes`).
    """
    code = row.get(f"{key}_code")
    return code if code not in (None, "") else row.get(key)


def _assumed_code(row: dict[str, Any], key: str) -> Any:
    """Receipts (an unconfirmed API): the `<key>_code` companion the sandbox assumes, else the value."""
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
        "invoiceAgentId": _code(head, "invoiceAgentId"),
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
        "productId": line.get("productCode") or line.get("skuCode") or _code(line, "productId"),
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
        **{k: line.get(k) for k in ("iProductAuxUnitId", "iProductUnitId", "subQty", "priceQty", "invExchRate",
                                     "unitExchangeType", "orderProductType")},
        **{f"orderDetailPrices!{k}": line.get(f"orderDetailPrices!{k}") for k in DETAIL_PRICE_KEYS},
    }


def receipt_data(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": row.get("code"),
        "vouchdate": row.get("vouchdate"),
        "financeOrg": _assumed_code(row, "financeOrg"),
        "customer": _assumed_code(row, "customer"),
        "currency": row.get("currency"),
        "oriSum": row.get("oriSum"),
        "settleMode": _assumed_code(row, "settleMode"),
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
    existing_lines: Sequence[tuple[str, str | None]] = (),
    product_type: str | None = None,
) -> dict[str, Any]:
    """A singleSave `data`. On Update each sent line that pairs with an existing one (same product, in
    line order) is an `Update` of that line id, so lines keep their identity; new lines are Inserted
    and existing lines nobody took are Deleted on purpose (`_status` per line, as singleSave takes it)."""
    payload = {k: v for k, v in data.items() if k not in READ_ONLY and k != "orderDetails" and v is not None}
    sent = list(data.get("orderDetails") or [])
    taken: dict[int, str] = {}
    free = list(existing_lines)
    for n, line in enumerate(sent):
        product = str(line.get("productId") or "").casefold()
        match = next((e for e in free if (e[1] or "").casefold() == product), None)
        if match is not None:
            free.remove(match)
            taken[n] = match[0]
    lines: list[dict[str, Any]] = [{"id": line_id, "_status": "Delete"} for line_id, _ in free]
    total = Decimal(0)
    rate = Decimal(str(data.get("orderPrices!exchRate") or 1))
    for n, line in enumerate(sent):
        row = {k: v for k, v in line.items() if k not in LINE_READ_ONLY and v is not None}
        qty = Decimal(str(row.get("qty", 0)))
        price = Decimal(str(row.get("oriTaxUnitPrice", 0)))
        amount = Decimal(str(row["oriSum"])) if row.get("oriSum") is not None else _money(qty * price)
        row["oriSum"] = _json_number(amount)
        total += amount
        _line_defaults(row, qty, price, amount, rate, product_type)
        if n in taken:
            row["id"] = taken[n]
            row["_status"] = "Update"
        else:
            row["_status"] = "Insert"
        lines.append(row)
    payload["orderDetails"] = lines
    # 开票客户 defaults to the ordering customer.
    if payload.get("invoiceAgentId") is None and payload.get("agentId") is not None:
        payload["invoiceAgentId"] = payload["agentId"]
    if payload.get("payMoney") is None:
        payload["payMoney"] = _json_number(total)
    payload["_status"] = status
    payload["resubmitCheckKey"] = resubmit_key
    if target_id is not None:
        payload["id"] = target_id
    result: dict[str, Any] = jsonable(payload)
    return result


def _line_defaults(
    row: dict[str, Any], qty: Decimal, price: Decimal, amount: Decimal, rate: Decimal, product_type: str | None
) -> None:
    """The singleSave line fields the API requires, derived when the mapping leaves them out.

    Sales and pricing units are the master unit with a fixed 1:1 conversion (unitExchangeType 0,
    invExchRate 1), so both quantities are `qty`; local-currency amounts are the order currency's
    times `orderPrices!exchRate`. `orderProductType` has no derivable value: it comes from the
    mapping or the system's `order_product_type` setting (its code list is [unverifiable] here).
    """
    unit = row.get("masterUnitId")
    nat_price = _json_number((price * rate).quantize(Decimal("0.000001")))
    defaults: tuple[tuple[str, Any], ...] = (
        ("iProductUnitId", unit), ("iProductAuxUnitId", unit), ("subQty", _json_number(qty)),
        ("priceQty", _json_number(qty)), ("invExchRate", 1), ("unitExchangeType", 0),
        ("orderProductType", product_type), ("orderDetailPrices!natTaxUnitPrice", nat_price),
        ("orderDetailPrices!natSum", _json_number(_money(amount * rate))),
    )
    for key, value in defaults:
        if row.get(key) is None and value is not None:
            row[key] = value


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
