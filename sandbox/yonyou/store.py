"""In-memory YonBIP tenant: customers (客户档案), sales orders (销售订单), receipts (收款单).

Pure logic, no HTTP: `sandbox.yonyou.app` turns these methods into the open-API endpoints.
Business failures raise `YonyouError(code, message)`, which the app answers with HTTP 200 and
`{"code": code, "message": message}` as YonBIP does.

Times: YonBIP speaks local time (Asia/Shanghai) as `yyyy-MM-dd HH:mm:ss`, so `pubts` has
one-second resolution; the store keeps naive local datetimes at whole seconds.
Ids: YonBIP ids are longs; the store hands out 19-digit increasing numbers so that their decimal
strings sort like the numbers (connectors compare ids as strings in cursors).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from erphub.sandbox.fakedata import PRODUCTS

SHANGHAI = ZoneInfo("Asia/Shanghai")
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
FIRST_ID = 2_000_000_000_000_000_001

# Business error code for validation failures. [assumed: "999" is the generic failure code seen in
# third-party Yonyou clients; the reference confirms only the 3100xx gateway codes.]
BUSINESS_ERROR = "999"
EMPTY_RESULT = "118001"
SIMPLE_VO_OPS = frozenset({"eq", "neq", "lt", "gt", "like", "between"})  # documented simpleVOs operators
# singleSave fields the published API page marks required (vendor-gaps.md, Yonyou); of the
# `orderDetailPrices!*` group the two local-currency amounts are required here [assumed which].
ORDER_REQUIRED = ("invoiceAgentId",)
LINE_REQUIRED = ("iProductAuxUnitId", "iProductUnitId", "subQty", "priceQty", "invExchRate", "unitExchangeType",
                 "orderProductType", "orderDetailPrices!natTaxUnitPrice", "orderDetailPrices!natSum")


class YonyouError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def local_now(now: Callable[[], datetime]) -> datetime:
    return now().astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0)


def fmt_ts(value: datetime) -> str:
    return value.strftime(TS_FORMAT)


def parse_ts(value: Any, what: str) -> datetime:
    try:
        return datetime.strptime(str(value).strip(), TS_FORMAT)
    except ValueError:
        raise YonyouError(BUSINESS_ERROR, f"{what}格式错误，应为yyyy-MM-dd HH:mm:ss: {value}") from None


def to_local(value: datetime) -> datetime:
    """An aware datetime as the tenant's naive local time at whole seconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0)


def _decimal(value: Any, what: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise YonyouError(BUSINESS_ERROR, f"{what}不是有效数字: {value}") from None
    if not result.is_finite():
        raise YonyouError(BUSINESS_ERROR, f"{what}不是有效数字: {value}")
    return result


def _num(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def multilang(value: Any, what: str) -> dict[str, str]:
    """Accept `{"zh_CN": ..}`, `{"simplifiedName": ..}` or a bare string; keep the three languages."""
    if isinstance(value, str):
        return {"simplifiedName": value}
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for src, dst in (
            ("zh_CN", "simplifiedName"),
            ("simplifiedName", "simplifiedName"),
            ("en_US", "englishName"),
            ("englishName", "englishName"),
            ("zh_TW", "traditionalName"),
            ("traditionalName", "traditionalName"),
        ):
            if value.get(src):
                out[dst] = str(value[src])
        if out.get("simplifiedName"):
            return out
    raise YonyouError(BUSINESS_ERROR, f"{what}不能为空")


def as_zh_cn(value: dict[str, str]) -> dict[str, str]:
    mapping = {"simplifiedName": "zh_CN", "englishName": "en_US", "traditionalName": "zh_TW"}
    return {mapping[k]: v for k, v in value.items() if k in mapping}


@dataclass
class Reference:
    """A master-data record other documents point at by id or by code."""

    id: int
    code: str
    name: str
    extra: dict[str, Any] = field(default_factory=dict)


class RefTable:
    def __init__(self, label: str) -> None:
        self.label = label
        self.by_id: dict[int, Reference] = {}
        self.by_code: dict[str, Reference] = {}

    def add(self, ref: Reference) -> None:
        self.by_id[ref.id] = ref
        self.by_code[ref.code] = ref

    def resolve(self, value: Any, *, required: bool = True) -> Reference | None:
        """References take an id or a code, as the singleSave doc says."""
        if value is None or value == "":
            if required:
                raise YonyouError(BUSINESS_ERROR, f"{self.label}不能为空")
            return None
        text = str(value)
        ref = self.by_code.get(text)
        if ref is None and text.isdigit():
            ref = self.by_id.get(int(text))
        if ref is None:
            raise YonyouError(BUSINESS_ERROR, f"{self.label}[{text}]不存在")
        return ref


@dataclass
class SaveOutcome:
    data: dict[str, Any]
    created: bool


class YonyouStore:
    """One tenant's data. Every public method takes the lock: the server thread and tests share it."""

    def __init__(
        self,
        now: Callable[[], datetime] | None = None,
        record_failure: Callable[[str, str | None], str | None] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._now = now or (lambda: datetime.now(UTC))
        self._record_failure = record_failure or (lambda path, key: None)
        self._next_id = FIRST_ID
        self.orgs = RefTable("组织")
        self.customer_classes = RefTable("客户分类")
        self.products = RefTable("物料")
        self.units = RefTable("计量单位")
        self.currencies = RefTable("币种")
        self.taxes = RefTable("税目")
        self.transaction_types = RefTable("交易类型")
        self.staff = RefTable("业务员")
        self.settle_modes = RefTable("结算方式")
        self.customers: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.receipts: dict[int, dict[str, Any]] = {}
        # resubmitCheckKey -> the first answer's data (MDD idempotency): per document kind.
        self.resubmit: dict[tuple[str, str], dict[str, Any]] = {}
        self._seed_reference_data()

    # ---- helpers ---------------------------------------------------------------------
    def new_id(self) -> int:
        with self._lock:
            value = self._next_id
            self._next_id += 1
            return value

    def now_local(self) -> datetime:
        return local_now(self._now)

    def _ref(self, table: RefTable, code: str, name: str, **extra: Any) -> None:
        table.add(Reference(self.new_id(), code, name, extra))

    def _seed_reference_data(self) -> None:
        self._ref(self.orgs, "100", "总公司")
        self._ref(self.orgs, "101", "华东销售公司")
        for code, name in (("KA", "重点客户"), ("SMB", "中小企业"), ("GOV", "政府客户")):
            self._ref(self.customer_classes, code, name)
        for code, name in (("Pcs", "个"), ("Set", "台"), ("Box", "箱")):
            self._ref(self.units, code, name)
        units = {"个": "Pcs", "台": "Set", "箱": "Box"}
        # Same numbering as the Kingdee sandbox's materials, so one sku lookup table serves both ERPs.
        for i, product in enumerate(PRODUCTS, start=1):
            self._ref(self.products, f"1.01.{i:03d}", product.name, unit=units[product.unit])
        for code, name in (("CNY", "人民币"), ("USD", "美元")):
            self._ref(self.currencies, code, name)
        for code, rate in (("VAT13", 13), ("VAT9", 9), ("VAT6", 6), ("VAT0", 0)):
            self._ref(self.taxes, code, f"增值税{rate}%", rate=rate)
        self._ref(self.transaction_types, "SO01", "普通销售")
        for i in range(1, 6):
            self._ref(self.staff, f"S{i:03d}", f"业务员{i}")
        for code, name in (("01", "现金"), ("02", "银行转账"), ("03", "票据")):
            self._ref(self.settle_modes, code, name)

    def _check_injected(self, path: str, key: str | None) -> None:
        message = self._record_failure(path, key)
        if message is not None:
            raise YonyouError(BUSINESS_ERROR, message)

    @staticmethod
    def _page(
        items: list[dict[str, Any]], page_index: Any, page_size: Any, max_size: int
    ) -> tuple[list[dict[str, Any]], int, int]:
        try:
            index = int(page_index or 1)
            size = int(page_size or 10)
        except (TypeError, ValueError):
            raise YonyouError(BUSINESS_ERROR, "pageIndex/pageSize必须为整数") from None
        if index < 1 or size < 1:
            raise YonyouError(BUSINESS_ERROR, "pageIndex/pageSize必须大于0")
        if size > max_size:
            raise YonyouError(BUSINESS_ERROR, f"pageSize不能超过{max_size}")
        start = (index - 1) * size
        return items[start : start + size], index, size

    @staticmethod
    def _pubts_filter(body: dict[str, Any]) -> datetime | None:
        """`pubts` as a top-level field [reference, customers] or a `simpleVOs` condition.

        Only the documented `simpleVOs` operators are accepted (eq, neq, lt, gt, like, between;
        vendor-gaps.md, Yonyou); anything else (`egt`, say) is refused as the API refuses it.
        """
        if body.get("pubts"):
            return parse_ts(body["pubts"], "pubts")
        since: datetime | None = None
        for cond in body.get("simpleVOs") or []:
            if not isinstance(cond, dict):
                raise YonyouError(BUSINESS_ERROR, "simpleVOs条件格式错误")
            op = cond.get("op")
            if op not in SIMPLE_VO_OPS:
                raise YonyouError(BUSINESS_ERROR, f"不支持的查询操作符[{op}]")
            if cond.get("field") != "pubts":
                continue
            value = parse_ts(cond.get("value1"), "pubts")
            if op == "gt":
                since = value + timedelta(seconds=1)  # pubts has whole seconds
            elif op in ("eq", "between"):
                since = value
        return since

    @staticmethod
    def _ordered(items: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows in `queryOrders` order; without it in no documented order (here: newest id first)."""
        orders = body.get("queryOrders") or []
        if not isinstance(orders, list):
            raise YonyouError(BUSINESS_ERROR, "queryOrders格式错误")
        result = sorted(items, key=lambda r: r["id"], reverse=True)
        for spec in reversed(orders):
            if not isinstance(spec, dict) or spec.get("field") not in ("pubts", "id", "code", "vouchdate"):
                raise YonyouError(BUSINESS_ERROR, f"queryOrders字段无效: {spec}")
            descending = str(spec.get("order", "asc")).lower() == "desc"
            name = str(spec["field"])
            result.sort(key=lambda r: r[name], reverse=descending)
        return result

    # ---- customers -------------------------------------------------------------------
    def customer_list(self, body: dict[str, Any], max_page: int) -> list[dict[str, Any]]:
        with self._lock:
            since = self._pubts_filter(body)
            rows = sorted(self.customers.values(), key=lambda c: (c["pubts"], c["id"]))
            if since is not None:
                rows = [c for c in rows if c["pubts"] >= since]
            if body.get("id"):
                rows = [c for c in rows if str(c["id"]) == str(body["id"])]
            if body.get("code"):
                rows = [c for c in rows if c["code"] == str(body["code"])]
            if body.get("name"):
                rows = [c for c in rows if c["name"].get("simplifiedName") == str(body["name"])]
            if body.get("fuzzyName"):
                rows = [c for c in rows if str(body["fuzzyName"]) in c["name"].get("simplifiedName", "")]
            if body.get("creditCode"):
                rows = [c for c in rows if c.get("creditCode") == str(body["creditCode"])]
            for key in ("createOrgCode", "customerClassCode"):
                if body.get(key):
                    rows = [c for c in rows if c.get(key) == str(body[key])]
            page, _, _ = self._page(rows, body.get("pageIndex"), body.get("pageSize", 500), max_page)
            return [self._customer_out(c) for c in page]

    @staticmethod
    def _customer_out(c: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(c)
        for key in ("pubts", "createTime", "modifyTime"):
            out[key] = fmt_ts(c[key])
        return out

    def customer_detail(self, customer_id: Any) -> dict[str, Any]:
        with self._lock:
            c = self._customer_by_id(customer_id)
            out = self._customer_out(c)
            out["name"] = as_zh_cn(c["name"])
            if c.get("shortname"):
                out["shortname"] = as_zh_cn(c["shortname"])
            return out

    def _customer_by_id(self, customer_id: Any) -> dict[str, Any]:
        try:
            c = self.customers.get(int(str(customer_id)))
        except ValueError:
            c = None
        if c is None:
            raise YonyouError(BUSINESS_ERROR, f"客户档案[{customer_id}]不存在")
        return c

    def customer_save(self, data: dict[str, Any], path: str) -> SaveOutcome:
        with self._lock:
            status = data.get("_status")
            if status not in ("Insert", "Update"):
                raise YonyouError(BUSINESS_ERROR, "_status必须为Insert或Update")
            code = str(data.get("code") or "").strip()
            self._check_injected(path, code or None)
            if status == "Update":
                current = self._customer_by_id(data.get("id"))
                merged = {**current, **{k: v for k, v in data.items() if k not in ("_status", "id")}}
                record = self._customer_validate(merged, existing_id=current["id"])
                record["createTime"] = current["createTime"]
                self.customers[current["id"]] = record
                return SaveOutcome(self._customer_out(record), created=False)
            record = self._customer_validate(data, existing_id=None)
            self.customers[record["id"]] = record
            return SaveOutcome(self._customer_out(record), created=True)

    def _customer_validate(self, data: dict[str, Any], existing_id: int | None) -> dict[str, Any]:
        code = str(data.get("code") or "").strip()
        if not code:
            raise YonyouError(BUSINESS_ERROR, "客户编码不能为空")
        if len(code) > 50:
            raise YonyouError(BUSINESS_ERROR, f"客户编码[{code}]长度不能超过50")
        if any(c["code"] == code and c["id"] != existing_id for c in self.customers.values()):
            raise YonyouError(BUSINESS_ERROR, f"客户编码[{code}]已存在")
        name = multilang(data.get("name"), "客户名称")
        if len(name["simplifiedName"]) > 200:
            raise YonyouError(BUSINESS_ERROR, "客户名称长度不能超过200")
        shortname = multilang(data["shortname"], "客户简称") if data.get("shortname") else None
        org = self.orgs.resolve(data.get("createOrg") or data.get("createOrgCode") or data.get("createOrgId"))
        cls_value = data.get("customerClass") or data.get("customerClassCode") or data.get("customerClassId")
        cls = self.customer_classes.resolve(cls_value, required=False)
        email = data.get("email")
        if email and "@" not in str(email):
            raise YonyouError(BUSINESS_ERROR, f"邮箱格式不正确: {email}")
        now = self.now_local()
        assert org is not None
        return {
            "id": existing_id or self.new_id(),
            "code": code,
            "name": name,
            "shortname": shortname,
            "createOrgId": org.id,
            "createOrgCode": org.code,
            "belongOrgId": org.id,
            "belongOrgCode": org.code,
            "customerClassId": cls.id if cls else None,
            "customerClassCode": cls.code if cls else None,
            "enterpriseName": data.get("enterpriseName") or name["simplifiedName"],
            "creditCode": data.get("creditCode"),
            "contactName": data.get("contactName"),
            "contactTel": data.get("contactTel"),
            "email": email,
            "address": data.get("address"),
            "stopStatus": bool(data.get("stopStatus", False)),
            "createTime": now,
            "modifyTime": now,
            "pubts": now,
        }

    def seed_customer(
        self, code: str, name: str, *, pubts: datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Insert a customer directly (tests, demo), optionally with a given change time."""
        with self._lock:
            record = self._customer_validate(
                {"code": code, "name": name, "createOrg": fields.pop("createOrg", "100"), **fields},
                existing_id=None,
            )
            if pubts is not None:
                local = to_local(pubts)
                record["pubts"] = record["modifyTime"] = record["createTime"] = local
            self.customers[record["id"]] = record
            return self._customer_out(record)

    # ---- sales orders ----------------------------------------------------------------
    def order_save(self, data: dict[str, Any], path: str) -> SaveOutcome:
        with self._lock:
            key = str(data.get("resubmitCheckKey") or "").strip()
            if not key:
                raise YonyouError(BUSINESS_ERROR, "resubmitCheckKey不能为空")
            if len(key) > 32:
                raise YonyouError(BUSINESS_ERROR, "resubmitCheckKey长度不能超过32")
            if ("order", key) in self.resubmit:
                # MDD idempotency: the same key answers the first result and changes nothing.
                return SaveOutcome(copy.deepcopy(self.resubmit[("order", key)]), created=False)
            status = data.get("_status")
            if status not in ("Insert", "Update"):
                raise YonyouError(BUSINESS_ERROR, "_status必须为Insert或Update")
            self._check_injected(path, str(data.get("code") or "") or None)
            if status == "Update":
                current = self._order_by_id(data.get("id"))
                order = self._order_validate(data, current)
            else:
                order = self._order_validate(data, None)
            self.orders[order["id"]] = order
            out = self._order_detail_out(order)
            self.resubmit[("order", key)] = copy.deepcopy(out)
            return SaveOutcome(out, created=status == "Insert")

    def _order_by_id(self, order_id: Any) -> dict[str, Any]:
        try:
            order = self.orders.get(int(str(order_id)))
        except ValueError:
            order = None
        if order is None:
            raise YonyouError(BUSINESS_ERROR, f"销售订单[{order_id}]不存在")
        return order

    def _order_validate(self, data: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        base = copy.deepcopy(current) if current else {}
        merged = {**base, **{k: v for k, v in data.items() if k not in ("orderDetails", "_status")}}
        code = str(merged.get("code") or "").strip()
        if not code:
            code = f"SO{self.now_local():%Y%m%d}{len(self.orders) + 1:06d}"
        clash = next(
            (
                o
                for o in self.orders.values()
                if o["code"] == code and (current is None or o["id"] != current["id"])
            ),
            None,
        )
        if clash is not None:
            raise YonyouError(BUSINESS_ERROR, f"单据编号[{code}]已存在")
        org = self.orgs.resolve(merged.get("salesOrgId"))
        settle_org = self.orgs.resolve(merged.get("settlementOrgId") or merged.get("salesOrgId"))
        ttype = self.transaction_types.resolve(merged.get("transactionTypeId"))
        missing = [f for f in ORDER_REQUIRED if merged.get(f) in (None, "")]
        if missing:
            raise YonyouError(BUSINESS_ERROR, f"表头必填字段为空: {', '.join(missing)}")
        customer_ref = merged.get("agentId")
        customer = self._customer_ref(customer_ref)
        vouchdate = parse_ts(merged.get("vouchdate"), "单据日期") if merged.get("vouchdate") else None
        if vouchdate is None:
            raise YonyouError(BUSINESS_ERROR, "单据日期不能为空")
        prices = dict(base.get("orderPrices") or {})
        for key, value in data.items():
            if key.startswith("orderPrices!"):
                prices[key.split("!", 1)[1]] = value
        currency = self.currencies.resolve(prices.get("currency") or "CNY")
        nat_currency = self.currencies.resolve(prices.get("natCurrency") or "CNY")
        assert org and settle_org and ttype and currency and nat_currency
        staff = self.staff.resolve(merged.get("corpContact"), required=False)
        lines = self._order_lines(data.get("orderDetails"), base.get("orderDetails") or [], current is None)
        total = sum((Decimal(str(line["oriSum"])) for line in lines), Decimal(0))
        if merged.get("payMoney") is None:
            raise YonyouError(BUSINESS_ERROR, "payMoney不能为空")
        pay = _decimal(merged.get("payMoney"), "payMoney")
        if abs(pay - total) > Decimal("0.01"):
            raise YonyouError(BUSINESS_ERROR, f"表头含税金额{pay}与表体含税金额合计{total}不一致")
        invoice_agent = self._customer_ref(merged.get("invoiceAgentId"))
        now = self.now_local()
        return {
            "id": current["id"] if current else self.new_id(),
            "code": code,
            "vouchdate": vouchdate,
            # References come back as ids with `<ref>_name` and `<ref>_code` companions (the YonBIP
            # answer convention: see the sandbox docstring for where each is documented).
            "salesOrgId": org.id,
            "salesOrgId_name": org.name,
            "salesOrgId_code": org.code,
            "settlementOrgId": settle_org.id,
            "settlementOrgId_name": settle_org.name,
            "settlementOrgId_code": settle_org.code,
            "transactionTypeId": ttype.id,
            "transactionTypeId_name": ttype.name,
            "transactionTypeId_code": ttype.code,
            "agentId": customer["id"],
            "agentId_name": customer["name"]["simplifiedName"],
            "agentId_code": customer["code"],
            "invoiceAgentId": invoice_agent["id"],
            "invoiceAgentId_name": invoice_agent["name"]["simplifiedName"],
            "invoiceAgentId_code": invoice_agent["code"],
            "corpContact": staff.id if staff else None,
            "corpContactUserName": staff.name if staff else None,
            "corpContact_code": staff.code if staff else None,
            "orderPrices": {
                "currency": currency.code,
                "natCurrency": nat_currency.code,
                "exchRate": _num(_decimal(prices.get("exchRate", 1), "exchRate")),
                "exchangeRateType": prices.get("exchangeRateType") or "01",
                "taxInclusive": bool(prices.get("taxInclusive", True)),
            },
            "payMoney": _num(pay),
            "memo": merged.get("memo"),
            "status": int(base.get("status", 0)),
            "createTime": base.get("createTime") or now,
            "pubts": now,
            "orderDetails": lines,
        }

    def _customer_ref(self, value: Any) -> dict[str, Any]:
        if value is None or value == "":
            raise YonyouError(BUSINESS_ERROR, "客户不能为空")
        text = str(value)
        for c in self.customers.values():
            if c["code"] == text or str(c["id"]) == text:
                return c
        raise YonyouError(BUSINESS_ERROR, f"客户[{text}]不存在")

    def _order_lines(
        self, given: Any, current: list[dict[str, Any]], inserting: bool
    ) -> list[dict[str, Any]]:
        if given is None and not inserting:
            return current
        if not isinstance(given, list) or (inserting and not given):
            raise YonyouError(BUSINESS_ERROR, "表体orderDetails不能为空")
        lines = {line["id"]: line for line in current}
        order = [line["id"] for line in current]
        for n, row in enumerate(given, start=1):
            if not isinstance(row, dict):
                raise YonyouError(BUSINESS_ERROR, f"表体第{n}行格式错误")
            status = row.get("_status", "Insert")
            if status == "Delete":
                line_id = int(str(row.get("id")))
                if line_id not in lines:
                    raise YonyouError(BUSINESS_ERROR, f"表体行[{row.get('id')}]不存在")
                del lines[line_id]
                order.remove(line_id)
                continue
            if status == "Update":
                line_id = int(str(row.get("id")))
                if line_id not in lines:
                    raise YonyouError(BUSINESS_ERROR, f"表体行[{row.get('id')}]不存在")
                merged = {**lines[line_id], **row}
                lines[line_id] = self._line_validate(merged, n, line_id)
                continue
            if status != "Insert":
                raise YonyouError(BUSINESS_ERROR, f"表体第{n}行_status无效: {status}")
            line_id = self.new_id()
            lines[line_id] = self._line_validate(row, n, line_id)
            order.append(line_id)
        result = [lines[i] for i in order]
        if not result:
            raise YonyouError(BUSINESS_ERROR, "表体orderDetails不能为空")
        for lineno, line in enumerate(result, start=1):
            line["lineno"] = lineno * 10
        return result

    def _line_validate(self, row: dict[str, Any], n: int, line_id: int) -> dict[str, Any]:
        missing = [f for f in LINE_REQUIRED if row.get(f) in (None, "")]
        if missing:
            raise YonyouError(BUSINESS_ERROR, f"表体第{n}行必填字段为空: {', '.join(missing)}")
        product = self.products.resolve(row.get("productId") or row.get("productCode") or row.get("skuId"))
        unit = self.units.resolve(
            row.get("masterUnitId")
            or row.get("iProductUnitId")
            or (product.extra.get("unit") if product else None)
        )
        tax = self.taxes.resolve(row.get("taxId") or "VAT13")
        assert product and unit and tax
        qty = _decimal(row.get("qty"), f"第{n}行数量")
        if qty <= 0:
            raise YonyouError(BUSINESS_ERROR, f"表体第{n}行数量必须大于0")
        price = _decimal(row.get("oriTaxUnitPrice"), f"第{n}行含税单价")
        if price < 0:
            raise YonyouError(BUSINESS_ERROR, f"表体第{n}行含税单价不能小于0")
        ori_sum = _decimal(row.get("oriSum", qty * price), f"第{n}行含税金额")
        if abs(ori_sum - qty * price) > Decimal("0.01"):
            raise YonyouError(BUSINESS_ERROR, f"表体第{n}行含税金额{ori_sum}不等于数量×含税单价")
        rate = Decimal(tax.extra["rate"])
        unit_price = row.get("oriUnitPrice")
        if unit_price is None:
            unit_price = (price / (1 + rate / 100)).quantize(Decimal("0.000001"))
        stock_org = self.orgs.resolve(row.get("stockOrgId") or "100")
        assert stock_org
        consign = row.get("consignTime")
        if consign:
            parse_ts(consign, f"第{n}行发货日期")
        return {
            "id": line_id,
            "productId": product.id,
            "productCode": product.code,
            "skuCode": product.code,
            "productName": product.name,
            "masterUnitId": unit.id,
            "masterUnitId_name": unit.name,
            "masterUnitId_code": unit.code,
            "iProductUnitId": unit.id,
            "iProductAuxUnitId": unit.id,
            "subQty": _num(_decimal(row.get("subQty"), f"第{n}行销售数量")),
            "priceQty": _num(_decimal(row.get("priceQty"), f"第{n}行计价数量")),
            "invExchRate": _num(_decimal(row.get("invExchRate"), f"第{n}行销售换算率")),
            "unitExchangeType": row.get("unitExchangeType"),
            "orderProductType": row.get("orderProductType"),
            "orderDetailPrices!natTaxUnitPrice": row.get("orderDetailPrices!natTaxUnitPrice"),
            "orderDetailPrices!natSum": row.get("orderDetailPrices!natSum"),
            "qty": _num(qty),
            "oriTaxUnitPrice": _num(price),
            "oriUnitPrice": _num(_decimal(unit_price, f"第{n}行无税单价")),
            "oriSum": _num(ori_sum),
            "taxId": tax.id,
            "taxId_code": tax.code,
            "taxRate": _num(rate),
            "stockOrgId": stock_org.id,
            "stockOrgId_name": stock_org.name,
            "stockOrgId_code": stock_org.code,
            "consignTime": consign,
            "sendQty": _num(_decimal(row.get("sendQty", 0), f"第{n}行已发货数量")),
        }

    def order_list(self, body: dict[str, Any], max_page: int) -> dict[str, Any]:
        """One row per order line (the list API's shape), ordered by (pubts, id, line)."""
        with self._lock:
            since = self._pubts_filter(body)
            orders = self._ordered(list(self.orders.values()), body)
            if since is not None:
                orders = [o for o in orders if o["pubts"] >= since]
            if body.get("code"):
                orders = [o for o in orders if o["code"] == str(body["code"])]
            if body.get("id"):
                orders = [o for o in orders if str(o["id"]) == str(body["id"])]
            rows = [self._order_row(o, line) for o in orders for line in o["orderDetails"]]
            page, index, size = self._page(rows, body.get("pageIndex"), body.get("pageSize", 10), max_page)
            return {
                "pageIndex": index,
                "pageSize": size,
                "recordCount": len(rows),
                "pageCount": (len(rows) + size - 1) // size,
                "recordList": page,
            }

    def _order_header_out(self, order: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in order.items() if k != "orderDetails"}
        out["vouchdate"] = fmt_ts(order["vouchdate"])
        out["pubts"] = fmt_ts(order["pubts"])
        out["createTime"] = fmt_ts(order["createTime"])
        return out

    def _order_row(self, order: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
        row = self._order_header_out(order)
        prices = row.pop("orderPrices")
        row.update({f"orderPrices!{k}": v for k, v in prices.items()})
        for key, value in line.items():
            row["orderDetailId" if key == "id" else key] = value
        return row

    def _order_detail_out(self, order: dict[str, Any]) -> dict[str, Any]:
        out = self._order_header_out(order)
        out["orderDetails"] = copy.deepcopy(order["orderDetails"])
        return out

    def order_detail(self, order_id: Any) -> dict[str, Any]:
        with self._lock:
            return self._order_detail_out(self._order_by_id(order_id))

    def order_count_with_code(self, code: str) -> int:
        with self._lock:
            return sum(1 for o in self.orders.values() if o["code"] == code)

    # ---- receipts (assumed API, see sandbox.yonyou docstring) ------------------------
    def receipt_save(self, data: dict[str, Any], path: str) -> SaveOutcome:
        with self._lock:
            key = str(data.get("resubmitCheckKey") or "").strip()
            if key and ("receipt", key) in self.resubmit:
                return SaveOutcome(copy.deepcopy(self.resubmit[("receipt", key)]), created=False)
            if len(key) > 32:
                raise YonyouError(BUSINESS_ERROR, "resubmitCheckKey长度不能超过32")
            status = data.get("_status")
            if status not in ("Insert", "Update"):
                raise YonyouError(BUSINESS_ERROR, "_status必须为Insert或Update")
            self._check_injected(path, str(data.get("code") or "") or None)
            current = None
            if status == "Update":
                try:
                    current = self.receipts.get(int(str(data.get("id"))))
                except ValueError:
                    current = None
                if current is None:
                    raise YonyouError(BUSINESS_ERROR, f"收款单[{data.get('id')}]不存在")
            record = self._receipt_validate({**(current or {}), **data}, current)
            self.receipts[record["id"]] = record
            out = self._receipt_out(record)
            if key:
                self.resubmit[("receipt", key)] = copy.deepcopy(out)
            return SaveOutcome(out, created=current is None)

    def _receipt_validate(self, data: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        code = str(data.get("code") or "").strip()
        if not code:
            raise YonyouError(BUSINESS_ERROR, "单据编号不能为空")
        if any(
            r["code"] == code and (current is None or r["id"] != current["id"])
            for r in self.receipts.values()
        ):
            raise YonyouError(BUSINESS_ERROR, f"单据编号[{code}]已存在")
        org = self.orgs.resolve(data.get("financeOrg") or data.get("orgId") or "100")
        customer = self._customer_ref(data.get("customer") or data.get("customerId"))
        currency = self.currencies.resolve(data.get("currency") or "CNY")
        settle = self.settle_modes.resolve(data.get("settleMode") or "02")
        assert org and currency and settle
        amount = _decimal(data.get("oriSum"), "收款金额")
        if amount <= 0:
            raise YonyouError(BUSINESS_ERROR, "收款金额必须大于0")
        vouchdate = parse_ts(data.get("vouchdate"), "单据日期") if data.get("vouchdate") else None
        if vouchdate is None:
            raise YonyouError(BUSINESS_ERROR, "单据日期不能为空")
        return {
            "id": current["id"] if current else self.new_id(),
            "code": code,
            "vouchdate": vouchdate,
            "financeOrg": org.id,
            "financeOrg_code": org.code,
            "customer": customer["id"],
            "customer_code": customer["code"],
            "customer_name": customer["name"]["simplifiedName"],
            "currency": currency.code,
            "oriSum": _num(amount),
            "settleMode": settle.id,
            "settleMode_code": settle.code,
            "srcBillNo": data.get("srcBillNo"),
            "memo": data.get("memo"),
            "pubts": self.now_local(),
        }

    def _receipt_out(self, r: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(r)
        out["vouchdate"] = fmt_ts(r["vouchdate"])
        out["pubts"] = fmt_ts(r["pubts"])
        return out

    def receipt_list(self, body: dict[str, Any], max_page: int) -> dict[str, Any]:
        with self._lock:
            since = self._pubts_filter(body)
            rows = self._ordered(list(self.receipts.values()), body)
            if since is not None:
                rows = [r for r in rows if r["pubts"] >= since]
            if body.get("code"):
                rows = [r for r in rows if r["code"] == str(body["code"])]
            if body.get("id"):  # the same `id` filter as the order list [assumed, like the receipt API]
                rows = [r for r in rows if str(r["id"]) == str(body["id"])]
            page, index, size = self._page(rows, body.get("pageIndex"), body.get("pageSize", 10), max_page)
            return {
                "pageIndex": index,
                "pageSize": size,
                "recordCount": len(rows),
                "pageCount": (len(rows) + size - 1) // size,
                "recordList": [self._receipt_out(r) for r in page],
            }

    def receipt_detail(self, receipt_id: Any) -> dict[str, Any]:
        with self._lock:
            try:
                r = self.receipts.get(int(str(receipt_id)))
            except ValueError:
                r = None
            if r is None:
                raise YonyouError(BUSINESS_ERROR, f"收款单[{receipt_id}]不存在")
            return self._receipt_out(r)

    # ---- test helpers ------------------------------------------------------------------
    def set_pubts(self, kind: str, ids: Iterable[int], when: datetime) -> None:
        table = {"customer": self.customers, "sales_order": self.orders, "receipt": self.receipts}[kind]
        with self._lock:
            for i in ids:
                table[i]["pubts"] = to_local(when)

    def count_customers_with_code(self, code: str) -> int:
        with self._lock:
            return sum(1 for c in self.customers.values() if c["code"] == code)
