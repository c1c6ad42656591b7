"""The Yonyou connector: incremental reads by `pubts`, per-record saves with real idempotency.

Change capture: `pubts` is the record's timestamp of its last write (YonBIP's optimistic-lock
stamp); audit, close and status changes are writes of the record and move it [assumed: the
transcriptions we have list `pubts` as the incremental field and say nothing of audit dates; the
sandbox behaves the same]. It is whole seconds, and the engine's overlap window (60 s) covers
clock skew and late commits.

Keys: `lookup` asks the list API for a code and keeps only rows whose code equals it exactly (case,
width and spaces count) [assumed: the list API's `code` filter may match more loosely; our own
comparison is exact, and so is `key_identity`].

`fetch` (records by id as they are now) asks the entity's list endpoint with its `id` filter, one call
per id, so a fetched record has exactly the shape of a read one: merchant/newlist documents `id` among
its filters (shared/reference/api-contracts.md section 2, [Y-API]); for voucherorder/list and the
receipt list the `id` filter is [assumed] (the sandbox behaves the same way). A deleted record is absent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from erphub.connectors.base import ConnectorBase, ConnectorSettings, SystemContext
from erphub.connectors.discovery import field_info
from erphub.connectors.http import Action, HttpClient, Verdict
from erphub.connectors.yonyou.auth import TOKEN_GONE, YonyouTokenAuth
from erphub.connectors.yonyou.schema import (
    LINE_READ_ONLY,
    READ_ONLY,
    RECEIPT_DISABLED,
    customer_data,
    customer_payload,
    entity_specs,
    format_pubts,
    order_data,
    order_payload,
    parse_pubts,
    receipt_data,
    receipt_payload,
    second_before,
)
from erphub.core.errors import ConfigError, ProtocolError, TransientError, YonyouBusinessError
from erphub.core.records import (
    Cursor,
    EntitySpec,
    Page,
    Record,
    RecordError,
    WriteAction,
    WriteRequest,
    WriteResult,
)
from erphub.core.urls import HttpUrl

CUSTOMER_LIST = "/yonbip/digitalModel/merchant/newlist"
CUSTOMER_SAVE = "/yonbip/digitalModel/merchant/save"
ORDER_LIST = "/yonbip/sd/voucherorder/list"
ORDER_SAVE = "/yonbip/sd/voucherorder/singleSave"
ORDER_DETAIL = "/yonbip/sd/voucherorder/detail"
BUSINESS_OK = "200"
EMPTY_RESULT = "118001"  # "根据条件查询结果为空" on some data centres [reference]
GATEWAY_REFUSALS = frozenset({"310404", "310037", "310005", "10018"})
QUERY_ORDERS = [{"field": "pubts", "order": "asc"}, {"field": "id", "order": "asc"}]
THROTTLED = frozenset({"429"})  # [assumed] the vendor's throttle answer is not documented


class YonyouSettings(ConnectorSettings):
    tenant_id: str
    app_key: str
    app_secret: SecretStr
    # Gateway discovery host; or give gateway_url + token_url to skip discovery.
    discovery_url: HttpUrl = "https://apigateway.yonyoucloud.com"
    gateway_url: HttpUrl | None = None
    token_url: HttpUrl | None = None
    token_leeway_s: float = 60.0
    # No receipt API is documented: the entity is disabled (schema.RECEIPT_DISABLED says why) until
    # the tenant's endpoint is configured, e.g. "/yonbip/fi/receivebill".
    receipt_path: str | None = None
    customer_page_max: int = 5000  # [reference]
    order_page_max: int = 500  # [assumed]
    # Published limit for sales-order list/detail/save: 60 requests per minute from 2026-03-31
    # (vendor-gaps.md, Yonyou); one limiter per system counts every call.
    default_rate_per_second: float = 1.0
    # singleSave needs orderDetails.orderProductType (商品售卖类型); "SALE" [unverifiable code value].
    order_product_type: str | None = "SALE"


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """Yonyou reports gateway and auth failures inside HTTP 200 bodies."""
    if not isinstance(body, dict) or "code" not in body:
        return None
    code = str(body.get("code"))
    message = str(body.get("message", ""))[:200]
    if code in TOKEN_GONE:
        return Verdict(Action.REAUTH, "session_expired", message)
    if code in THROTTLED or response.status_code == 429:
        return Verdict(Action.RATE_LIMITED, "rate_limited", message)
    if code in GATEWAY_REFUSALS:
        return Verdict(Action.FAIL, code, f"{code} {message}")
    if response.is_success:
        return Verdict(Action.OK)  # business codes are the caller's to judge (per record)
    return None


def resubmit_check_key(idempotency_key: str) -> str:
    """A stable `resubmitCheckKey` (≤ 32 chars) for one idempotency key."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


Fetch = Callable[[str | None, int, int], list[dict[str, Any]]]
Convert = Callable[[list[dict[str, Any]]], dict[str, Any]]


class YonyouConnector(ConnectorBase):
    kind: ClassVar[str] = "yonyou"
    settings_model: ClassVar[type[ConnectorSettings]] = YonyouSettings
    # Writes are one save call per record (merchant/save, voucherorder singleSave: there is no batch
    # save), so a pipeline's batch is only its store transaction: the default 100 stays.

    def max_page(self, entity: str) -> int:
        """merchant/newlist `pageSize` max 5000 (api-contracts.md section 2, [Y-API] 客户档案列表查询V2);
        the order and receipt lists publish none (`order_page_max`, 500 [assumed])."""
        return self.settings.customer_page_max if entity == "customer" else self.settings.order_page_max

    def __init__(self, settings: YonyouSettings, context: SystemContext) -> None:
        self.settings = settings
        self.context = context
        self.auth = YonyouTokenAuth(
            tenant_id=settings.tenant_id,
            app_key=settings.app_key,
            app_secret=settings.app_secret,
            discovery_url=settings.discovery_url,
            gateway_url=settings.gateway_url,
            token_url=settings.token_url,
            leeway_s=settings.token_leeway_s,
        )
        self.http = HttpClient(
            context,
            base_url=settings.gateway_url or settings.discovery_url,
            auth=self.auth,
            default_rate_per_second=settings.default_rate_per_second,
            classify_body=classify,
        )
        self._receipt = (settings.receipt_path or "").rstrip("/")
        self._agent_codes: dict[str, str] = {}  # customer id -> code (order rows carry ids)
        self._specs = entity_specs(settings.receipt_path)

    def spec(self, entity: str) -> EntitySpec:
        found = super().spec(entity)
        if entity == "receipt" and self.settings.receipt_path is None:
            raise ConfigError(RECEIPT_DISABLED)
        return found

    # ---- protocol ------------------------------------------------------------------------
    def entities(self) -> dict[str, EntitySpec]:
        return dict(self._specs)

    def discover(self, entities: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`SupportsDiscovery`: Yonyou publishes no metadata API, so these are the documented field
        lists (schema.py, from the transcribed API pages), marked `"source": "documented"`."""
        out: dict[str, dict[str, Any]] = {}
        for entity in entities:
            spec = self.spec(entity) if entity != "receipt" else self._specs["receipt"]
            fields: dict[str, Any] = {
                name: field_info("reference" if name.endswith("Id") else "text",
                                 createable=name not in READ_ONLY, updateable=name not in READ_ONLY)
                for name in sorted(spec.fields or ())
            }
            for child, items in spec.child_fields.items():
                fields[child] = field_info("children", items={
                    n: field_info("text", createable=n not in LINE_READ_ONLY, updateable=n not in LINE_READ_ONLY)
                    for n in sorted(items)})
            out[entity] = {"native_name": spec.native_name, "key_field": spec.key_field, "source": "documented",
                           "fields": fields}
        return out

    def check(self) -> None:
        self._call("POST", CUSTOMER_LIST, {"pageIndex": 1, "pageSize": 1})

    def close(self) -> None:
        self.http.close()

    def read_changes(
        self, entity: str, since: Cursor | None, *, page_size: int = 100, until: Cursor | None = None
    ) -> Iterator[Page]:
        self.spec(entity)
        if entity == "customer":
            size = max(1, min(page_size, self.settings.customer_page_max))
            return self._scan(
                self._fetch_customers, lambda rows: customer_data(rows[0]), since, until, size, grouped=False
            )
        size = max(1, min(page_size, self.settings.order_page_max))
        if entity == "sales_order":
            return self._scan(self._fetcher(ORDER_LIST), order_data, since, until, size, grouped=True)
        return self._scan(
            self._fetcher(self._receipt + "/list"),
            lambda rows: receipt_data(rows[0]),
            since,
            until,
            size,
            grouped=False,
        )

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        self.spec(entity)
        writer = {
            "customer": self._write_customer,
            "sales_order": self._write_order,
            "receipt": self._write_receipt,
        }[entity]
        results: list[WriteResult] = []
        for request in batch:
            try:
                results.append(writer(request))
            except YonyouBusinessError as exc:
                results.append(
                    WriteResult(
                        request.source_id, request.target_id, error=RecordError(exc.code, exc.vendor_message)
                    )
                )
        return results

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        self.spec(entity)
        found: dict[str, str] = {}
        for key in dict.fromkeys(keys):
            target = self._find_id(entity, key)
            if target is not None:
                found[key] = target
        return found

    def fetch(self, entity: str, ids: Sequence[str]) -> dict[str, Record]:
        """`SupportsFetch`: see the module docstring."""
        self.spec(entity)
        found: dict[str, Record] = {}
        for record_id in dict.fromkeys(i for i in ids if str(i).isdigit()):  # Yonyou ids are longs
            if entity == "customer":
                rows = self._call("POST", CUSTOMER_LIST, {"pageIndex": 1, "pageSize": 10, "id": record_id}) or []
                convert: Convert = lambda group: customer_data(group[0])  # noqa: E731
            else:
                path = ORDER_LIST if entity == "sales_order" else self._receipt + "/list"
                size = self.settings.order_page_max
                data = self._call("POST", path, {"pageIndex": 1, "pageSize": size, "id": record_id}) or {}
                rows = data.get("recordList") or [] if isinstance(data, dict) else []
                convert = order_data if entity == "sales_order" else (lambda group: receipt_data(group[0]))
            mine = [row for row in rows if str(row.get("id")) == record_id]
            if mine:
                found[record_id] = self._record(mine, convert)
        return found

    # ---- calls ---------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        body = self.http.request(
            method, path, json=payload, params=params, endpoint=path, idempotent=idempotent
        ).body
        if not isinstance(body, dict) or "code" not in body:
            raise ProtocolError(f"{method} {path}: answer without a code", system=self.context.name)
        code = str(body["code"])
        if code == BUSINESS_OK:
            return body.get("data")
        if code == EMPTY_RESULT:
            return None
        raise YonyouBusinessError(code, str(body.get("message", ""))[:500], system=self.context.name)

    def _fetch_customers(self, pubts: str | None, index: int, size: int) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {"pageIndex": index, "pageSize": size}
        if pubts is not None:
            payload["pubts"] = pubts
        data = self._call("POST", CUSTOMER_LIST, payload)
        if data is None:
            return []
        if not isinstance(data, list):
            raise ProtocolError("merchant/newlist: data is not an array", system=self.context.name)
        return data

    def _fetcher(self, path: str) -> Fetch:
        def fetch(pubts: str | None, index: int, size: int) -> list[dict[str, Any]]:
            # No default order is documented: the keyset needs (pubts, id) ascending, asked for.
            payload: dict[str, Any] = {"pageIndex": index, "pageSize": size, "queryOrders": QUERY_ORDERS}
            if pubts is not None:
                # Documented operators are eq/neq/lt/gt/like/between (no `egt`); pubts has whole
                # seconds, so "pubts >= T" is "pubts > T - 1 s".
                payload["simpleVOs"] = [{"field": "pubts", "op": "gt", "value1": second_before(pubts)}]
            data = self._call("POST", path, payload)
            if data is None:
                return []
            rows = data.get("recordList") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise ProtocolError(f"{path}: data.recordList missing", system=self.context.name)
            if path == ORDER_LIST:
                self._customer_codes(rows)
            return rows

        return fetch

    def _customer_codes(self, rows: list[dict[str, Any]]) -> None:
        """Order rows name the customer by id (plus `agentId_name`, a name): swap in its code.

        Codes are what mappings and saves use; the id is looked up once per connector with
        merchant/newlist's documented `id` filter (a customer's code does not change in practice).
        """
        for row in rows:
            for key in ("agentId", "invoiceAgentId"):
                value = row.get(key)
                if value in (None, "") or row.get(f"{key}_code") not in (None, ""):
                    continue  # absent, or the row names the code itself (schema._code reads it)
                text = str(value)
                if text not in self._agent_codes:
                    found = self._call("POST", CUSTOMER_LIST, {"pageIndex": 1, "pageSize": 10, "id": text}) or []
                    match = next((c for c in found if str(c.get("id")) == text), None)
                    self._agent_codes[text] = str(match["code"]) if match and match.get("code") else text
                row[key] = self._agent_codes[text]

    # ---- incremental read ----------------------------------------------------------------
    def _scan(
        self,
        fetch: Fetch,
        convert: Convert,
        since: Cursor | None,
        until: Cursor | None,
        size: int,
        *,
        grouped: bool,
    ) -> Iterator[Page]:
        """Keyset over `pubts` (whole seconds) with `pageIndex` inside one second.

        Each query asks for `pubts >= T`. After a full page the next query starts at the page's
        last pubts (pageIndex 1) — rows already delivered at that second are dropped by the
        (updated_at, id) cursor — unless the whole page sits in second T, in which case pageIndex
        moves on. Orders arrive one row per line: the last order of a full page may continue on
        the next page, so it is held back and completed there.
        """
        after = since
        pubts = format_pubts(since.updated_at) if since is not None else None
        index = 1
        carry: list[dict[str, Any]] = []
        pending: list[Record] = []   # delivered in pages of `size`: refetched overlaps make pages ragged
        yielded = False
        while True:
            rows = fetch(pubts, index, size)
            full = len(rows) >= size
            groups = _group(carry + rows) if grouped else [[row] for row in rows]
            held = groups.pop() if grouped and full and groups else []
            beyond_until = False
            for group in groups:
                record = self._record(group, convert)
                if until is not None and until.is_before(record.updated_at, record.id):
                    beyond_until = True
                    break
                if after is None or after.is_before(record.updated_at, record.id):
                    pending.append(record)
                    after = record.cursor()
            while len(pending) >= size:
                chunk, pending = pending[:size], pending[size:]
                yielded = True
                yield Page(chunk, chunk[-1].cursor())
            if not full or beyond_until:
                break
            last = str(rows[-1]["pubts"])
            if last == pubts:
                index += 1
                carry = held
            else:
                pubts, index, carry = last, 1, []
        if pending or not yielded:
            yield Page(pending, pending[-1].cursor() if pending else None)

    def _record(self, rows: list[dict[str, Any]], convert: Convert) -> Record:
        head = rows[0]
        if "pubts" not in head or "id" not in head:
            raise ProtocolError("list row without id/pubts", system=self.context.name)
        return Record(str(head["id"]), parse_pubts(head["pubts"]), convert(rows))

    # ---- writes --------------------------------------------------------------------------
    def _find_id(self, entity: str, code: str) -> str | None:
        if entity == "customer":
            rows = self._call("POST", CUSTOMER_LIST, {"pageIndex": 1, "pageSize": 10, "code": code}) or []
        else:
            path = ORDER_LIST if entity == "sales_order" else self._receipt + "/list"
            data = self._call("POST", path, {"pageIndex": 1, "pageSize": 10, "code": code}) or {}
            rows = data.get("recordList") or []
        for row in rows:
            if str(row.get("code")) == code:
                return str(row["id"])
        return None

    def _key(self, request: WriteRequest) -> str:
        code = self.request_key(request, "code")
        if not code:
            raise YonyouBusinessError("missing_key", "the record has no code (match key)")
        return str(code)

    def _write_customer(self, request: WriteRequest) -> WriteResult:
        code = self._key(request)
        data = {**request.data, "code": request.data.get("code") or code}
        target = request.target_id or (None if request.key_looked_up else self._find_id("customer", code))
        action = WriteAction.UPDATED if target else WriteAction.CREATED
        try:
            saved = self._call(
                "POST",
                CUSTOMER_SAVE,
                {"data": customer_payload(data, "Update" if target else "Insert", target)},
                idempotent=False,
            )
        except TransientError:
            # merchant/save has no idempotency key: the lost answer may hide a landed Insert.
            # `code` is unique, so ask by code and save again as an update when it is there.
            target = self._find_id("customer", code)
            saved = self._call(
                "POST",
                CUSTOMER_SAVE,
                {"data": customer_payload(data, "Update" if target else "Insert", target)},
                idempotent=False,
            )
        return WriteResult(request.source_id, str(saved["id"]), action)

    def _write_order(self, request: WriteRequest) -> WriteResult:
        code = self._key(request)
        data = {**request.data, "code": request.data.get("code") or code}
        target = request.target_id or (None if request.key_looked_up else self._find_id("sales_order", code))
        lines: list[tuple[str, str | None]] = []  # (line id, product code) of the stored order
        if target:
            detail = self._call("GET", ORDER_DETAIL, params={"id": target}) or {}
            lines = [(str(line["id"]), line.get("productCode") or line.get("skuCode"))
                     for line in detail.get("orderDetails") or []]
        payload = order_payload(
            data,
            "Update" if target else "Insert",
            resubmit_check_key(request.idempotency_key),
            target,
            lines,
            self.settings.order_product_type,
        )
        # singleSave is idempotent by resubmitCheckKey: a retry answers the first result.
        saved = self._call("POST", ORDER_SAVE, {"data": payload}, idempotent=True)
        return WriteResult(
            request.source_id, str(saved["id"]), WriteAction.UPDATED if target else WriteAction.CREATED
        )

    def _write_receipt(self, request: WriteRequest) -> WriteResult:
        code = self._key(request)
        data = {**request.data, "code": request.data.get("code") or code}
        target = request.target_id or (None if request.key_looked_up else self._find_id("receipt", code))
        payload = receipt_payload(
            data, "Update" if target else "Insert", resubmit_check_key(request.idempotency_key), target
        )
        saved = self._call("POST", self._receipt + "/singleSave", {"data": payload}, idempotent=True)
        return WriteResult(
            request.source_id, str(saved["id"]), WriteAction.UPDATED if target else WriteAction.CREATED
        )


def _group(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive list rows of one order (same id) as one group, in order."""
    groups: list[list[dict[str, Any]]] = []
    for row in rows:
        if groups and groups[-1][0].get("id") == row.get("id"):
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups
