"""Salesforce REST API connector: Account (customer), Opportunity, Order with OrderItems (sales_order).

Vendor facts confirmed from the reference (`shared/reference/api-contracts.md` §3, citing the
Salesforce REST API guide): OAuth2 token endpoint `/services/oauth2/token` with password,
client_credentials and refresh_token grants answering `{access_token, instance_url, id, token_type,
issued_at, signature}` and `{error, error_description}` on failure; calls to `{instance_url}/services/
data/vXX.X/` with `Authorization: Bearer`; `GET query?q=` answering `{totalSize, done, nextRecordsUrl,
records[{attributes,…}]}` in batches of ≤ 2,000 followed through `nextRecordsUrl` until `done`; incremental
reads on `SystemModstamp`; upsert by external id; sObject collection upsert `PATCH /composite/sobjects/
{SObject}/{ExtIdField}` with ≤ 200 records answering per-record `{id, success, errors, created}` in order,
`allOrNone`; errors as arrays `[{message, errorCode, fields}]`; 401 INVALID_SESSION_ID; 403
REQUEST_LIMIT_EXCEEDED when the org's rolling 24 h allocation is used up.

Assumed [unconf]: datetime literals with milliseconds in SOQL (`2024-01-01T00:00:00.000Z`) and `Id >
'…'` comparisons for the (SystemModstamp, Id) keyset; `Sforce-Query-Options: batchSize=N` (the server may
round up to 200); `Sforce-Limit-Info: api-usage=used/max` (kept in `api_usage`); per-record error
`{statusCode, message, fields}`; custom fields and external ids (`CRM_Code__c`, `ERP_Number__c`,
`Opp_No__c`, `Order_No__c`, `Line_Key__c`, Product2 `SKU__c`; all configurable); that changing an
OrderItem bumps its Order's SystemModstamp (roll-up of TotalAmount); token answers carry no lifetime, so
the token is renewed after `session_ttl_s` (the org's session timeout) and on 401.

Reads: `WHERE (SystemModstamp > t OR (SystemModstamp = t AND Id > 'id')) ORDER BY SystemModstamp, Id`,
one query cursor (a server-side snapshot) paged through `nextRecordsUrl`, so records sharing a
timestamp are neither skipped nor repeated. Writes: collections of ≤ 200 upserted by the external id
(the match key), so a retried or replayed write lands on the same record; an order's items are upserted
after their order by `Line_Key__c` (default `<order key>#<n>`). Price books (orders.py, citing the
Object Reference for Order/OrderItem): a new Order gets `Pricebook2Id` (`pricebook_id`, else the org's
standard price book), a new OrderItem gets the `PricebookEntryId` of its product (`Product2: {SKU__c}`)
in that book plus an `Order` external-id reference; an existing Order/OrderItem is re-upserted
without those create-only fields (`OrderId`, `PricebookEntryId` are not updateable). Changing an
existing item's product is therefore not possible in place [not handled: needs delete + create].
Items removed from an order are not deleted (no delete call is made).
Any other sObject can be an entity (`objects: {name: {sobject, external_id, fields}}`): read by
SystemModstamp, upserted by its external id; describe (`discover`) lists its `__c` fields.
A 403 REQUEST_LIMIT_EXCEEDED is "rate limited" (counted), not an auth failure: "TotalRequests Limit
exceeded." (the daily allocation) fails the call at once, to be replayed later; "ConcurrentRequests
(Concurrent API Requests) Limit exceeded." (25 calls of 20 s or more running in the org, Salesforce Help
000389067) and "ConcurrentPerOrgLongTxn Limit exceeded." (10 Apex transactions of 5 s or more) are
retried within the run, 10 to 12.5 s apart.
"""

from erphub.connectors.salesforce.connector import SalesforceConnector, SalesforceSettings

__all__ = ["SalesforceConnector", "SalesforceSettings"]
