"""Yonyou YonBIP / YonSuite open API connector (客户档案, 销售订单, 收款单).

Vendor facts confirmed from the reference (`shared/reference/api-contracts.md` §2.1, from the
transcribed open.yonyoucloud.com docs and API pages):
- auth chain: getGatewayAddress?tenantId → {gatewayUrl, tokenUrl}; getAccessToken?appKey&timestamp&signature
  with signature = URLEncode(Base64(HmacSHA256(appSecret, "appKey<k>timestamp<ms>"))); answer code "00000",
  `data.access_token`, `data.expire` (7200 s); business calls carry `?access_token=`;
- success code "200"; errors in HTTP 200 bodies: 310036 illegal token / 310001 token empty (→ renew the
  token and retry), 310404 path not registered, 310037 API not authorised, 310005 wrong data centre,
  10018 appKey missing (→ permanent); 118001 means an empty customer search (→ no rows);
- customers: merchant/newlist (pageIndex from 1, pageSize ≤ 5000, `pubts` ≥ filter `yyyy-MM-dd HH:mm:ss`,
  `data` an array, multilingual name), merchant/save with `_status` Insert/Update, `code` the business key;
- sales orders: voucherorder/singleSave with `resubmitCheckKey` (client-generated, unique, ≤ 32 chars),
  `orderPrices!…` keys, references by id or code, payMoney = Σ line tax-included amounts; voucherorder/list
  one row per order line in data.recordList with data.pageCount; voucherorder/detail?id=.

From vendor-gaps.md (Yonyou section: public transcriptions of the YonBIP 销售订单 API pages, e.g.
qeasy.cloud/api/6511c804-2377-31d6-935b-f99bfe4768db "销售订单单个保存_v1"):
- singleSave needs header `invoiceAgentId` and line `iProductAuxUnitId`, `iProductUnitId`, `subQty`,
  `priceQty`, `invExchRate`, `unitExchangeType`, `orderProductType`, `orderDetailPrices!*`: mappings may
  set them; otherwise they are derived (schema._line_defaults: invoice customer = customer, units =
  master unit at 1:1, local amounts = order amounts × exchRate, orderProductType = setting "SALE"
  [unverifiable code value]);
- list filters use only the documented `simpleVOs` operators (eq, neq, lt, gt, like, between): the
  keyset asks `pubts gt T-1s` (pubts has whole seconds) and sends `queryOrders` (pubts, id) itself,
  because no default order is documented [the `queryOrders` item shape {field, order} is unverifiable];
- rows name references by id, with companions beside them: `<ref>_name` for the header references
  (`salesOrgId_name`, `transactionTypeId_name`, `agentId_name`, `settlementOrgId_name`,
  `invoiceAgentId_name`, `corpContactUserName`; line `stockOrgId_name`) and `productCode`/`skuCode` for
  the product, per the transcribed 销售订单详情查询 page (GET /yonbip/sd/voucherorder/detail, 返回值参数:
  community transcription of open.diwork.com, apiId b37abde0809f4192945236a10c0ad86b), and `<ref>_code`,
  the code companion YonBIP SD answers carry (退款记录详情查询 POST /yonbip/sd/api/upayment/refund/detail
  documents `agentId_code`, `transactionTypeId_code`, `settlementOrgId_code`, `originalPk_code`; the
  返利单 answers `salesOrgId_code`, `agentId_code`). Every reference reads as its **code** — the
  `<ref>_code` companion, the product's `productCode`/`skuCode` — because mappings write codes and a
  reconcile must compare like with like; whether voucherorder/list itself carries `<ref>_code` is
  [unverifiable] (its page lists `_name` only), so where a row lacks it the customer's code is looked up
  by id (merchant/newlist `id` filter, cached) and any other reference reads as its id;
- the published limit for sales-order list/detail/save is 60 requests per minute (from 2026-03-31):
  `default_rate_per_second` = 1.0;
- receipts: no receipt endpoint is documented (only /yonbip/fi/paybill/save, for refunds), so the
  entity is disabled with that reason (schema.RECEIPT_DISABLED) until `receipt_path` is configured.

Assumed (configurable in `YonyouSettings` where it matters):
- an HTTP 429 / code "429" is "slow down" (the throttle answer is not documented);
- `pubts` is Asia/Shanghai local time; ids are longs whose decimal strings sort like the numbers;
- a business refusal carries a code other than "200" (e.g. "999") and is that record's error;
- order-list pageSize ≤ 500.

Idempotency: customers are looked up by `code` before an Insert (code is unique), and a save whose
answer was lost is re-checked by code and repeated as an Update; orders and receipts send
`resubmitCheckKey` = first 32 hex chars of SHA-256(idempotency key), and are also looked up by code first.
An order update keeps line identity: a sent line paired with a stored one (same product, in line
order) is an `Update` of that line id, new lines are Inserted, unpaired stored lines Deleted.
Paging caveat: more records than one page sharing one `pubts` second are paged by pageIndex; a record
modified during that scan can shift offsets, the inherent limit of offset paging (use large pages).
"""

from erphub.connectors.yonyou.auth import YonyouTokenAuth, signature, token_query
from erphub.connectors.yonyou.connector import (
    YonyouBusinessError,
    YonyouConnector,
    YonyouSettings,
    resubmit_check_key,
)

__all__ = [
    "YonyouBusinessError",
    "YonyouConnector",
    "YonyouSettings",
    "YonyouTokenAuth",
    "resubmit_check_key",
    "signature",
    "token_query",
]
