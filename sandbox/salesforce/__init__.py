"""Salesforce REST API sandbox: OAuth2 token endpoint, SOQL queries with `nextRecordsUrl`, upsert by
external id, sObject collections, the org's request allocation.

Confirmed from the reference (`shared/reference/api-contracts.md` §3, Salesforce docs it cites):
- `POST /services/oauth2/token` grants password / client_credentials / refresh_token →
  `{access_token, instance_url, id, token_type:"Bearer", issued_at (ms), signature}`; failures
  `{error:"invalid_grant", error_description}`; `Authorization: Bearer`; base `/services/data/vXX.X/`;
- `GET query?q=` → `{totalSize, done, nextRecordsUrl, records:[{attributes:{type,url}, ...}]}`, batches of
  up to 2,000, `nextRecordsUrl` like `/services/data/v59.0/query/01g...-2000`; `queryAll`; bad SOQL →
  `MALFORMED_QUERY`;
- `PATCH /sobjects/{Obj}/{ExtIdField}/{value}`: 201 created / 200 (v46+; 204 before) updated / 300 when
  several records match, nothing written;
- `PATCH /composite/sobjects/{Obj}/{ExtIdField}` ≤ 200 records → 200 with per-record
  `{id, success, errors, created}` in order, `allOrNone`;
- errors are arrays `[{"message","errorCode","fields"}]`; 401 `INVALID_SESSION_ID` "Session expired or
  invalid"; 403 `REQUEST_LIMIT_EXCEEDED` "TotalRequests Limit exceeded." when the rolling 24 h
  allocation is used up, and "ConcurrentRequests (Concurrent API Requests) Limit exceeded." while 25
  calls that have run for 20 s or more are still running (Salesforce Help 000389067; both limits are
  `SalesforceOptions`, with `request_time_s` to make an org slow).

Assumed [unconf] (configurable through `create_sandbox(**options)`, see `SalesforceOptions`):
- `Sforce-Query-Options: batchSize=N` clamps to [min_batch_size=200, 2000] (tests may lower the minimum);
- `Sforce-Limit-Info: api-usage=used/max` on every data response; daily allocation 15,000;
- the `signature` = Base64(HMAC-SHA256(client_secret, id + issued_at)); session timeout 2 h;
- per-record error `{statusCode, message, fields}`; codes DUPLICATE_EXTERNAL_ID, STRING_TOO_LONG,
  REQUIRED_FIELD_MISSING, INVALID_FIELD, FIELD_CUSTOM_VALIDATION_EXCEPTION (injected failures),
  ALL_OR_NONE_OPERATION_ROLLED_BACK, EXCEEDED_ID_LIMIT (> 200);
- SOQL accepts datetime literals with milliseconds; string comparison is case-insensitive;
- objects and fields: Account (ext ids `CRM_Code__c`, `ERP_Number__c`), Opportunity (`Opp_No__c`), Order
  (`Order_No__c`; OrderNumber auto, TotalAmount summed from items), OrderItem (`Line_Key__c`), Product2
  (`SKU__c` = the CRM sku P-1001..P-1020) with standard price book entries.

Strict as the vendor (vendor-gaps.md, Salesforce): an OrderItem needs `PricebookEntryId` from its
Order's price book (an Order gets no price book unless one is sent); `Product2Id` is not createable;
`OrderId` and `PricebookEntryId` are create-only (an update sending them is refused with
INVALID_FIELD_FOR_INSERT_UPDATE); collection records without `attributes.type` are refused
(INVALID_TYPE "Must send a concrete entity type." [message unverifiable]). `GET sobjects` and
`GET sobjects/{SObject}/describe` answer the org's objects and fields, including the custom fields
given to `create_sandbox(custom_fields={"Account": {"Region__c": "string"}})`.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from erphub.sandbox.common import SandboxApp
from erphub.sandbox.fakedata import Fake
from erphub.sandbox.faults import Faults, RequestLog
from erphub.sandbox.salesforce.app import Allocation, SalesforceOptions, Sessions, build_app
from erphub.sandbox.salesforce.soql import SoqlError, parse
from erphub.sandbox.salesforce.store import FieldDef, SalesforceOrg, SfRecordError, id18

__all__ = [
    "SalesforceOptions",
    "SalesforceOrg",
    "SfRecordError",
    "SoqlError",
    "create_sandbox",
    "id18",
    "parse",
]

_OPTION_NAMES = {f.name for f in fields(SalesforceOptions)}


def _error_body(status: int, reason: str) -> Any:
    code = {429: "REQUEST_LIMIT_EXCEEDED", 503: "SERVER_UNAVAILABLE", 504: "REQUEST_RUNNING_TOO_LONG"}.get(
        status, "UNKNOWN_EXCEPTION"
    )
    return [{"message": reason, "errorCode": code}]


def seed_accounts(
    org: SalesforceOrg, count: int, seed: int = 2026, *, start: int = 1, modstamp: datetime | None = None
) -> list[str]:
    fake = Fake(seed)
    ids = []
    for n in range(start, start + count):
        company = fake.company()
        ids.append(
            org.seed(
                "Account",
                {
                    "Name": company.name,
                    "CRM_Code__c": f"CUS-{n:06d}",
                    "Phone": company.phone,
                    "Credit_Code__c": company.credit_code,
                    "Short_Name__c": company.short_name,
                    "BillingState": company.address["province"],
                    "BillingCity": company.address["city"],
                    "BillingStreet": company.address["district"] + company.address["detail"],
                    "BillingCountry": "CN",
                    "Contact_Name__c": company.contact_name,
                    "Email__c": company.email,
                    "Customer_Group__c": ("KA", "SMB", "GOV")[n % 3],
                    "CurrencyIsoCode": "CNY",
                },
                modstamp=modstamp or datetime.now(UTC),
            )
        )
    return ids


def _custom_fields(spec: dict[str, dict[str, str | FieldDef]]) -> dict[str, dict[str, FieldDef]]:
    """{"Account": {"Region__c": "string"}} -> field definitions (a type name or a FieldDef)."""
    return {
        sobject: {name: d if isinstance(d, FieldDef) else FieldDef(d, 255 if d == "string" else None)
                  for name, d in fields.items()}
        for sobject, fields in spec.items()
    }


def create_sandbox(
    *,
    seed_accounts_count: int = 0,
    seed: int = 2026,
    custom_fields: dict[str, dict[str, str | FieldDef]] | None = None,
    **options: Any,
) -> SandboxApp:
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise TypeError(
            f"unknown salesforce sandbox options {sorted(unknown)}; valid: {sorted(_OPTION_NAMES)}"
        )
    opts = SalesforceOptions(**options)
    faults = Faults()
    log = RequestLog()
    org = SalesforceOrg(record_failure=faults.record_failure, custom_fields=_custom_fields(custom_fields or {}))
    if seed_accounts_count:
        seed_accounts(org, seed_accounts_count, seed)
    sessions = Sessions()
    allocation = Allocation(opts.daily_api_limit)
    app = build_app(org, opts, faults, sessions, allocation)
    sandbox = SandboxApp.build(
        "salesforce",
        app,
        credentials={
            "client_id": opts.client_id,
            "client_secret": opts.client_secret,
            "username": opts.username,
            "password": opts.password,
            "security_token": opts.security_token,
            "refresh_token": opts.refresh_token,
        },
        description="Salesforce REST API (OAuth2, SOQL query paging, external-id upsert, collections)",
        error_body=_error_body,
        state=org,
        faults=faults,
        log=log,
    )
    sandbox.extra.update({"options": opts, "sessions": sessions, "allocation": allocation})
    return sandbox
