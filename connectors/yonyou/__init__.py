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

Assumed (configurable in `YonyouSettings` where it matters):
- receipts: no receipt API was found; `receipt_path` (default /yonbip/fi/receivebill) with singleSave/list/
  detail following the sales-order conventions;
- rate limit: none published; `default_rate_per_second` = 10 and an HTTP 429 / code "429" is "slow down";
- list rows are ordered by (pubts, id) — the keyset read depends on it; order and receipt lists filter
  `pubts` through `simpleVOs [{field:"pubts", op:"egt", value1}]`; order-list pageSize ≤ 500;
- list/detail rows give a reference's code in a `<field>_code` companion (else the raw value is used);
- `pubts` is Asia/Shanghai local time; ids are longs whose decimal strings sort like the numbers;
- a business refusal carries a code other than "200" (e.g. "999") and is that record's error.

Idempotency: customers are looked up by `code` before an Insert (code is unique), and a save whose
answer was lost is re-checked by code and repeated as an Update; orders and receipts send
`resubmitCheckKey` = first 32 hex chars of SHA-256(idempotency key), and are also looked up by code first.
An order update deletes the stored lines and inserts the new ones (line ids change).
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
