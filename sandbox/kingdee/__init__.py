"""Kingdee K/3 Cloud (金蝶云星空) WebAPI sandbox.

Confirmed from the reference (`shared/reference/api-contracts.md` §1) and the installed SDK source:
- transport `POST {base}/k3cloud/Kingdee.BOS.WebApi.ServicesStub.<Service>.<Method>.common.kdsvc`, JSON,
  business errors with HTTP 200; SDK 8.2.0 signed headers verified byte for byte (see `auth.py`; the
  HMAC output is base64 of the lowercase hex digest — read from `util/hmac_util.py`);
- logins `ValidateUser [acctId,user,password,lcid]`, `LoginByAppSecret [acctId,user,appId,appSecret,lcid]`
  (named keys accepted too), `LoginBySign [acctId,user,appId,timestamp,sign,lcid]` with sign = hex
  SHA256 of the ordinal-sorted concatenation; LoginResult envelope; `kdservice-sessionid` cookie, read
  back from the cookie or the header of that name; `会话信息已丢失，请重新登录` with MsgCode 1;
- envelopes: `{formid, data}` for form operations, `{data}` with FormId inside for queries, `data` as an
  object or a JSON string, the old `{parameters:[...]}` wrapper; ResponseStatus with Errors/SuccessEntitys/
  DIndex and the MsgCode table (1 context lost, 9 field missing, 10 no data, 11 validation, 14 call limit);
- ExecuteBillQuery: FieldKeys comma string, FilterString, OrderString, StartRow, Limit, TopRowCount; bare
  2-D array in FieldKeys order; one row per entry line; dotted keys; `[[{"Result":...}]]` errors;
  BillQuery: array of objects keyed by FieldKeys; Save/BatchSave with NeedUpDateFields, IsDeleteEntry
  (default true), pk 0 = create, FEntryID 0 = new line; Submit/Audit/UnAudit with Numbers / Ids;
  FDocumentStatus A → B → C (D after UnAudit); `单据已审核，不允许修改`; `字段[X]是必录字段`;
  `元数据中标识为X的字段不存在`; `业务对象不存在`; the BatchSave async mode (`beginmethod`).

Draft (暂存, `DynamicFormService.Draft`): the request and answer are Save's. Sources: K-DOCS
bill-operations.md §5 ("参数与 Save 完全相同"), the C# client `Draft<T>(SaveRequest<T>) -> SaveResponse`,
BAH.BOS.WebAPI.Client's `class Draft : Save` (only the service name differs), the SDK 8.2.0
`K3CloudApiSdk.Draft(formid, data)`; the status Z (暂存) of FDocumentStatus from api-contracts.md §1.4
[3p]; "暂存的单据是没有编码的" from Push's IsDraftWhenSaveFail (K-DOCS §8). So a drafted document is
status Z, has no auto number, and is not matched by `FDocumentStatus = 'C'`; Save turns it into A (and
numbers it), Submit takes it to B. Unverified, the sandbox's choice: a draft skips the required-field
check (K-DOCS: "暂存单据是否校验必填项 文档未说明"), Submit of a Z document checks them and numbers it
instead of demanding a Save first, Draft of an already saved document is refused (`单据已保存，不允许暂存`),
and Draft stamps FModifyDate as Save does.

Assumed (configurable through `create_sandbox(**options)` where it matters, see `KingdeeOptions`):
- session idle timeout 1200 s; signed-timestamp skew 300 s; Limit silently capped at 2000;
- MsgCode 14 answered (message `调用频率超过限制`) above `calls_per_second` (off by default);
- session-lost and throttle answers are the plain envelope on every service (also ExecuteBillQuery);
- a bad signature answers MsgCode 1 with the reason; a wrong acctId in signed headers answers HTTP 500
  `Fail to verify thirty passport`;
- BatchSave is not transactional: valid records are saved, others reported in Errors by DIndex;
- duplicate FNumber/FBillNo on create fails the record (`…已存在，不允许重复`, FieldName = the number key);
- reference validation message `字段[X]的值“N”在系统中不存在` (FieldName = the field key); references are
  not required to be audited; Submit/Audit do not change FModifyDate (only saves do);
- an update without NeedUpDateFields clears the fields the Model leaves out (as Kingdee users report);
- View answers ORM-style property names (key without the leading F) with localised names;
- reference FormIds `ORG_Organizations, BD_Currency, BOS_BillType, BD_UNIT, BD_Saler, BD_CustomerGroup,
  BD_SETTLETYPE, CN_RECPAYPURPOSE`; auto numbers `CUST000001`, `XSDD000001`, `SKD000001`;
  `FCONTACTUNITTYPE` holds a FormId (e.g. `BD_Customer`);
- text compares case-insensitively (SQL Server's default Chinese_PRC_CI_AS collation).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from erphub.sandbox.common import SandboxApp, WindowLimiter
from erphub.sandbox.faults import Faults, RequestLog
from erphub.sandbox.kingdee.app import (
    KingdeeOptions,
    KingdeeState,
    build_app,
    error_envelope,
    injected_error_body,
    status_body,
)
from erphub.sandbox.kingdee.auth import SESSION_LOST, Credentials, SessionBook, api_signature, login_sign, sdk_hmac
from erphub.sandbox.kingdee.seed import seed
from erphub.sandbox.kingdee.store import SHANGHAI as SHANGHAI_ZONE
from erphub.sandbox.kingdee.store import KdRequestError, KingdeeStore, format_kd_datetime, shanghai_now

__all__ = [
    "SESSION_LOST",
    "SHANGHAI_ZONE",
    "Credentials",
    "KdRequestError",
    "KingdeeOptions",
    "KingdeeState",
    "KingdeeStore",
    "api_signature",
    "create_sandbox",
    "endpoint",
    "error_envelope",
    "format_kd_datetime",
    "login_sign",
    "sdk_hmac",
    "shanghai_now",
    "status_body",
]

_OPTION_NAMES = {f.name for f in fields(KingdeeOptions)}


def endpoint(method: str, service: str = "DynamicFormService") -> str:
    """The fault-plan pattern of one service method (the last path segment), e.g. endpoint("BatchSave")."""
    return f"Kingdee.BOS.WebApi.ServicesStub.{service}.{method}.common.kdsvc"


def create_sandbox(
    *, seed_customers: int = 8, seed_receipts: int = 6, seed_value: int = 2026, **options: Any
) -> SandboxApp:
    """A Kingdee sandbox with the demo account set seeded; `state` is its `KingdeeState`."""
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise TypeError(f"unknown kingdee sandbox options {sorted(unknown)}; valid: {sorted(_OPTION_NAMES)}")
    opts = KingdeeOptions(**options)
    faults = Faults()
    log = RequestLog()
    store = KingdeeStore(max_limit=opts.max_limit, custom_fields=opts.custom_fields)
    seed(store, customers=seed_customers, receipts=seed_receipts, seed_value=seed_value)
    limiter = WindowLimiter(opts.calls_per_second) if opts.calls_per_second else None
    state = KingdeeState(store, SessionBook(opts.idle_timeout_s), opts, faults, limiter)
    app = build_app(state)
    creds = opts.credentials
    return SandboxApp.build(
        "kingdee",
        app,
        credentials={**creds.as_dict(), "server_url_path": "/k3cloud/"},
        description="Kingdee K/3 Cloud WebAPI (session login + SDK 8.x signed headers; "
        "BD_Customer, SAL_SaleOrder, AR_RECEIVEBILL, BD_MATERIAL)",
        error_body=injected_error_body,
        state=state,
        faults=faults,
        log=log,
    )
