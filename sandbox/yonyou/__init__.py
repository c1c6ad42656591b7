"""Yonyou YonBIP / YonSuite open-API sandbox (客户档案, 销售订单, 收款单).

Confirmed from the reference (`shared/reference/api-contracts.md` §2.1):
- auth chain: `GET /open-auth/dataCenter/getGatewayAddress?tenantId=` → `{code:"00000", data:{gatewayUrl,
  tokenUrl}}` (both on this same loopback server), then `GET {tokenUrl}/open-auth/selfAppAuth/base/v1/
  getAccessToken?appKey&timestamp&signature` (the old path without `base/v1` answers too) with
  signature = URLEncode(Base64(HmacSHA256(appSecret, "appKey<k>timestamp<ms>"))), answering
  `{code:"00000", data:{access_token, expire}}`; business calls carry `?access_token=`;
- business success `{"code":"200"}`; errors with HTTP 200: 310001 token empty, 310036 illegal token,
  310404 path not registered (HTTP 404), 10018 appKey missing/disabled, 118001 empty customer search
  (off by default: `empty_customer_code="118001"` turns it on);
- customers: `merchant/newlist` (pageIndex, pageSize ≤ 5000, `pubts` ≥ filter, `data` an array, multilingual
  `name` {simplifiedName, englishName, traditionalName}), `merchant/detail?id=` (name as {zh_CN}),
  `merchant/save` with `_status` Insert/Update;
- sales orders: `voucherorder/singleSave` with `resubmitCheckKey` (≤ 32 chars) idempotency, `!`-keys for
  `orderPrices`, references by id or code, payMoney = Σ line oriSum; `voucherorder/list` one row per
  order line in `data.recordList` with `data.pageCount`; `voucherorder/detail?id=`; status 0 开立.

Assumed (configurable through `create_sandbox(**options)`, see `YonyouOptions`):
- receipts (收款单): no API is confirmed; this sandbox serves `{receipt_path}/singleSave|list|detail` with
  `receipt_path="/yonbip/fi/receivebill"` and the sales-order conventions (resubmitCheckKey, recordList);
- rate limit: none published; `calls_per_second` (off by default) answers HTTP 429 + Retry-After with
  `{"code":"429"}`;
- order/receipt lists answer in `queryOrders` order ([{field, order}]) and otherwise newest id first
  (no default order is documented); `simpleVOs` accepts only the documented operators eq, neq, lt, gt,
  like, between (vendor-gaps.md) — `egt` is refused;
- order rows (list and detail) carry each reference as its id with `<ref>_name` and `<ref>_code`
  companions (`salesOrgId_code`, `agentId_code`, `transactionTypeId_code`, `corpContact_code`, line
  `masterUnitId_code`, `taxId_code`, `stockOrgId_code`), besides the documented `productCode`/`skuCode`
  and `corpContactUserName`. The `_name` companions are on the 销售订单详情查询 page
  (/yonbip/sd/voucherorder/detail); `<ref>_code` is the YonBIP answer convention documented on sibling SD
  pages (退款记录详情查询 /yonbip/sd/api/upayment/refund/detail: `agentId_code`, `transactionTypeId_code`,
  `settlementOrgId_code`, `originalPk_code`) — [assumed] for voucherorder, whose page lists only `_name`;
  `ref_codes=False` answers order rows without them, as that page documents;
- singleSave refuses orders without `invoiceAgentId` and lines without `iProductAuxUnitId`,
  `iProductUnitId`, `subQty`, `priceQty`, `invExchRate`, `unitExchangeType`, `orderProductType`,
  `orderDetailPrices!natTaxUnitPrice`, `orderDetailPrices!natSum` (which of `orderDetailPrices!*`: assumed);
- the generic business failure code "999"; the codes for a bad signature/timestamp ("10020"),
  the accepted clock skew of a signed timestamp (300 s), order-list page cap (500);
- seeded reference data: orgs 100/101, customer classes KA/SMB/GOV, products 1.01.001..020 (the Kingdee
  material numbers), units Pcs/Set/Box, currencies CNY/USD, taxes VAT13/VAT9/VAT6/VAT0, transaction
  type SO01, staff S001..S005, settle modes 01/02/03.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from erphub.sandbox.common import SandboxApp
from erphub.sandbox.fakedata import Fake
from erphub.sandbox.faults import Faults, RequestLog
from erphub.sandbox.yonyou.app import (
    AUTH_PREFIX,
    GATEWAY_PREFIX,
    TokenBook,
    YonyouOptions,
    build_app,
    expected_signature,
)
from erphub.sandbox.yonyou.store import YonyouError, YonyouStore

__all__ = [
    "AUTH_PREFIX",
    "GATEWAY_PREFIX",
    "YonyouError",
    "YonyouOptions",
    "YonyouStore",
    "create_sandbox",
    "expected_signature",
]

_OPTION_NAMES = {f.name for f in fields(YonyouOptions)}


def _error_body(status: int, reason: str) -> Any:
    return {"code": str(status), "message": reason}


def create_sandbox(*, seed_customers: int = 0, seed: int = 2026, **options: Any) -> SandboxApp:
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise TypeError(f"unknown yonyou sandbox options {sorted(unknown)}; valid: {sorted(_OPTION_NAMES)}")
    opts = YonyouOptions(**options)
    faults = Faults()
    log = RequestLog()
    store = YonyouStore(record_failure=faults.record_failure)
    tokens = TokenBook()
    fake = Fake(seed)
    for n in range(1, seed_customers + 1):
        company = fake.company()
        store.seed_customer(
            f"CUS-{n:06d}",
            company.name,
            shortname=company.short_name,
            creditCode=company.credit_code,
            contactName=company.contact_name,
            contactTel=company.phone,
            email=company.email,
            address="".join(company.address.values()),
            customerClass="KA" if n % 3 == 0 else "SMB",
        )
    app = build_app(store, opts, faults, tokens)
    sandbox = SandboxApp.build(
        "yonyou",
        app,
        credentials={"tenant_id": opts.tenant_id, "app_key": opts.app_key, "app_secret": opts.app_secret},
        description="Yonyou YonBIP open API (auth chain, customers, sales orders, receipts [assumed])",
        error_body=_error_body,
        state=store,
        faults=faults,
        log=log,
    )
    sandbox.extra.update({"options": opts, "tokens": tokens})
    return sandbox
