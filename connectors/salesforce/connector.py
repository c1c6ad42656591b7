"""The Salesforce connector: SOQL incremental reads by (SystemModstamp, Id), external-id upserts.

Change capture: SystemModstamp is the "date and time when a user or automated process (such as a
trigger) last modified this record", where LastModifiedDate moves only for a user's edits
(developer.salesforce.com/docs/atlas.en-us.api.meta/api/system_fields.htm). State changes (an
Order's Status, an Opportunity's StageName and IsClosed) are writes of the record, and system
updates (roll-ups, flows) move SystemModstamp too, so it covers every state change this
connector's mappings read. The engine's overlap window (`read_lag_s` = 60 s) covers a transaction
that commits after a record stamped earlier was read [assumed: Salesforce documents no bound].

`fetch` (records by id as they are now) is the read's own SOQL with `WHERE Id IN (...)` (SOQL
comparison operators, IN lists: developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/
sforce_api_calls_soql_select_comparisonoperators.htm), at most 200 ids per query to keep the query
string short; a deleted record is simply not returned (queries skip the recycle bin unless `queryAll` is used).

`on_delete: delete` is sObject Rows `DELETE /sobjects/{sObject}/{id}` (204; 404 NOT_FOUND or
ENTITY_IS_DELETED when it is already gone, which counts as done): developer.salesforce.com/docs/
atlas.en-us.api_rest.meta/api_rest/dome_delete_record.htm. The record goes to the recycle bin. There is no
standard "inactive" field on Account/Order, so `deactivate` is not offered.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from erphub.connectors.auth import TokenAuth
from erphub.connectors.base import ConnectorBase, ConnectorSettings, SystemContext
from erphub.connectors.discovery import field_info
from erphub.connectors.http import Action, HttpClient, Verdict
from erphub.connectors.salesforce.auth import TOKEN_PATH, ClientCredentialsAuth, PasswordAuth, RefreshTokenAuth
from erphub.connectors.salesforce.orders import ITEM_CREATE_ONLY, ORDER_CREATE_ONLY, PriceBook
from erphub.connectors.salesforce.schema import (
    ACCOUNT_FIELDS,
    ITEM_READ_ONLY,
    ITEMS,
    OPPORTUNITY_FIELDS,
    ORDER_FIELDS,
    ORDER_ITEM_FIELDS,
    ORDER_READ_ONLY,
    SYSTEM_READ_ONLY,
    entity_specs,
    parse_datetime,
    soql_datetime,
    soql_string,
    strip_attributes,
    to_wire,
)
from erphub.core.errors import ProtocolError
from erphub.core.records import (
    Cursor,
    Direction,
    EntitySpec,
    Page,
    Record,
    RecordError,
    WriteAction,
    WriteRequest,
    WriteResult,
)
from erphub.core.urls import HttpUrl

COLLECTION_LIMIT = 200  # [doc] records per sObject collection call
TRANSIENT_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK"})
ALLOCATION_WAIT_S = 3600.0  # the daily allocation frees slowly: give up at once, replay later
# REQUEST_LIMIT_EXCEEDED also answers while the org runs too many long calls at once: 25 API calls of
# 20 s or more (Salesforce Help 000389067, "ConcurrentRequests (Concurrent API Requests) Limit
# exceeded."), or 10 Apex transactions of 5 s or more, triggers of our upserts included ("Concurrent"
# "PerOrgLongTxn Limit exceeded.", Apex Developer Guide, Execution Governors and Limits). A slot frees
# when one of them ends, so the call is retried within the run, 10 to 12.5 s apart (five tries in the
# 60 s retry budget; spread, so the workers refused together do not come back together). Only the
# daily allocation ("TotalRequests Limit exceeded.") waits an hour.
CONCURRENT_WAIT_S = 10.0
CONCURRENT_JITTER = 0.25  # of CONCURRENT_WAIT_S, added at random
CONCURRENT_LIMIT_PREFIX = "Concurrent"


class SObjectEntity(BaseModel):
    """An entity over any sObject (standard or custom `__c`): upserted by its external-id field."""

    model_config = ConfigDict(extra="forbid")

    sobject: str = Field(min_length=1)
    external_id: str = Field(min_length=1, description="the external-id field upserts and lookups match on")
    fields: list[str] = Field(min_length=1, description="the fields read and written (see systems discover)")


# Hosts that serve every org's user logins; the client-credentials flow is not one of them.
SHARED_LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})


class SalesforceSettings(ConnectorSettings):
    """Where and how the connector logs in, and which fields and objects it reads and writes.

    `grant: client_credentials` (the default) posts to the org's own My Domain token endpoint
    (`https://<MyDomainName>.my.salesforce.com/services/oauth2/token`), not to the shared
    login.salesforce.com / test.salesforce.com hosts the password and refresh-token grants may use:
    Salesforce Help, "OAuth 2.0 Client Credentials Flow for Server-to-Server Integration"
    (help.salesforce.com/s/articleView?id=xcloud.remoteaccess_oauth_client_credentials_flow.htm), as
    read in shared/reference/vendor-gaps.md (Salesforce REST). So that combination is refused at validate.
    """

    # `grant` comes first so the login_url check below can see it.
    grant: Literal["client_credentials", "password", "refresh_token"] = "client_credentials"
    login_url: HttpUrl = Field(default="https://login.salesforce.com", validate_default=True)
    api_version: str = "59.0"
    client_id: str
    client_secret: SecretStr
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    session_ttl_s: float = 3600.0  # token answers carry no lifetime; renew before the org's session timeout
    account_external_id: str = "CRM_Code__c"
    opportunity_external_id: str = "Opp_No__c"
    order_external_id: str = "Order_No__c"
    order_item_external_id: str = "Line_Key__c"
    product_external_id: str = "SKU__c"
    query_batch_size: int = 2000
    all_or_none: bool = False
    # Price book of orders and their items; unset: the org's standard price book (orders.py).
    pricebook_id: str | None = None
    # The org's own fields (`__c`, from describe / `erphub systems discover`) read and written per entity.
    extra_fields: dict[str, list[str]] = Field(default_factory=dict)
    # Any other sObject as an entity of its own: {name: {sobject, external_id, fields}}.
    objects: dict[str, SObjectEntity] = Field(default_factory=dict)

    @field_validator("login_url")
    @classmethod
    def _my_domain_for_client_credentials(cls, value: str, info: ValidationInfo) -> str:
        host = (urlsplit(value).hostname or "").lower()
        if info.data.get("grant") == "client_credentials" and host in SHARED_LOGIN_HOSTS:
            raise ValueError(
                f"grant 'client_credentials' needs the org's My Domain URL (https://<MyDomainName>.my.salesforce.com,"
                f" or <MyDomainName>--<sandbox>.sandbox.my.salesforce.com for a sandbox), not {host}; set login_url")
        return value

    @model_validator(mode="after")
    def _grant_fields(self) -> SalesforceSettings:
        if self.grant == "password" and (self.username is None or self.password is None):
            raise ValueError("grant 'password' needs username and password (and usually security_token)")
        if self.grant == "refresh_token" and self.refresh_token is None:
            raise ValueError("grant 'refresh_token' needs refresh_token")
        return self


def classify(response: httpx.Response, body: Any) -> Verdict | None:
    """403 REQUEST_LIMIT_EXCEEDED is a throttle, not a permission problem: the org's concurrent long
    calls (wait seconds) or its daily allocation (any other message: wait an hour)."""
    if (
        response.status_code == 403
        and isinstance(body, list)
        and body
        and isinstance(body[0], dict)
        and body[0].get("errorCode") == "REQUEST_LIMIT_EXCEEDED"
    ):
        message = str(body[0].get("message", ""))
        if message.startswith(CONCURRENT_LIMIT_PREFIX):
            wait = CONCURRENT_WAIT_S * (1 + random.uniform(0, CONCURRENT_JITTER))
        else:
            wait = ALLOCATION_WAIT_S
        return Verdict(Action.RATE_LIMITED, "rate_limited", message, retry_after=wait)
    return None


_SF_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


class SalesforceConnector(ConnectorBase):
    kind: ClassVar[str] = "salesforce"
    settings_model: ClassVar[type[ConnectorSettings]] = SalesforceSettings
    # SOQL returns at most 2,000 records per query batch (resources-query.md, `Sforce-Query-Options:
    # batchSize` 200..2000); sObject collections take at most 200 records per call
    # (resources-composite-sobjects-collections-upsert.html). api-contracts.md section 3.
    max_page_size: ClassVar[int] = 2000
    max_batch_size: ClassVar[int] = COLLECTION_LIMIT

    def __init__(self, settings: SalesforceSettings, context: SystemContext) -> None:
        self.settings = settings
        self.context = context
        self.auth = self._auth(settings)
        self.http = HttpClient(
            context, base_url=settings.login_url, auth=self.auth, default_concurrency=10, classify_body=classify
        )
        self.base = f"/services/data/v{settings.api_version}"
        self.api_usage: tuple[int, int] | None = None  # from Sforce-Limit-Info
        self.pricebook = PriceBook(self._query_all, settings.product_external_id, settings.pricebook_id)
        s = settings
        self._specs = entity_specs(
            s.account_external_id, s.opportunity_external_id, s.order_external_id, s.order_item_external_id
        )
        self._objects = {"customer": "Account", "opportunity": "Opportunity", "sales_order": "Order"}
        self._ext = {
            "customer": s.account_external_id,
            "opportunity": s.opportunity_external_id,
            "sales_order": s.order_external_id,
        }
        for entity, obj in s.objects.items():
            self._objects[entity] = obj.sobject
            self._ext[entity] = obj.external_id
            self._specs[entity] = EntitySpec(
                entity, obj.sobject, frozenset({Direction.READ, Direction.WRITE}),
                frozenset({*obj.fields, obj.external_id, "SystemModstamp"}), obj.external_id,
                description=f"sObject {obj.sobject} (configured)",
            )
        for entity, extra in s.extra_fields.items():
            known = self._specs[entity].fields if entity in self._specs else None
            if known is not None:
                self._specs[entity] = replace(self._specs[entity], fields=known | frozenset(extra))

    @staticmethod
    def _auth(s: SalesforceSettings) -> TokenAuth:
        url = s.login_url.rstrip("/") + TOKEN_PATH
        common: dict[str, Any] = {"default_ttl_s": s.session_ttl_s, "leeway_s": min(60.0, s.session_ttl_s / 5)}
        if s.grant == "password":
            assert s.username is not None and s.password is not None
            return PasswordAuth(
                url,
                s.client_id,
                s.client_secret,
                username=s.username,
                password=s.password,
                security_token=s.security_token,
                **common,
            )
        if s.grant == "refresh_token":
            assert s.refresh_token is not None
            return RefreshTokenAuth(url, s.client_id, s.client_secret, s.refresh_token, **common)
        return ClientCredentialsAuth(url, s.client_id, s.client_secret, **common)

    # ---- protocol ------------------------------------------------------------------------
    def entities(self) -> dict[str, EntitySpec]:
        return dict(self._specs)

    def check(self) -> None:
        self._get(f"{self.base}/query", params={"q": "SELECT Id FROM Account LIMIT 1"})

    def close(self) -> None:
        self.http.close()

    def read_changes(
        self, entity: str, since: Cursor | None, *, page_size: int = 100, until: Cursor | None = None
    ) -> Iterator[Page]:
        sobject = self._object(entity)
        fields = self._select_fields(entity)
        conditions = []
        if since is not None:
            ts = soql_datetime(since.updated_at)
            conditions.append(f"(SystemModstamp > {ts} OR (SystemModstamp = {ts} AND Id > {soql_string(since.id)}))")
        if until is not None:
            conditions.append(f"SystemModstamp <= {soql_datetime(until.updated_at)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        soql = f"SELECT {', '.join(fields)} FROM {sobject}{where} ORDER BY SystemModstamp, Id"
        return self._pages(entity, soql, page_size, until)

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        sobject = self._object(entity)
        ext = self._ext[entity]
        results: list[WriteResult | None] = [None] * len(batch)
        wire: list[tuple[int, dict[str, Any]]] = []
        for i, request in enumerate(batch):
            key = self.request_key(request, ext)
            if not key:
                results[i] = WriteResult(
                    request.source_id,
                    request.target_id,
                    error=RecordError("MISSING_ARGUMENT", f"no {ext} (match key)", ext),
                )
                continue
            drop = ORDER_READ_ONLY | {ITEMS} if entity == "sales_order" else frozenset()
            wire.append((i, to_wire(sobject, request.data, ext, str(key), drop)))
        if entity == "sales_order":
            self._order_price_books(wire)
        for start in range(0, len(wire), COLLECTION_LIMIT):
            chunk = wire[start : start + COLLECTION_LIMIT]
            answers = self._upsert_collection(sobject, ext, [body for _, body in chunk])
            for (i, _), answer in zip(chunk, answers, strict=True):
                results[i] = self._result(batch[i], answer)
        if entity == "sales_order":
            self._write_items(batch, results)
        return [r for r in results if r is not None]

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        sobject = self._object(entity)
        ext = self._ext[entity]
        by_identity: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            chunk = unique[start : start + 100]
            values = ", ".join(soql_string(k) for k in chunk)
            soql = f"SELECT Id, {ext} FROM {sobject} WHERE {ext} IN ({values}) ORDER BY Id"
            for row in self._query_all(soql):
                by_identity.setdefault(self.key_identity(entity, str(row[ext])), str(row["Id"]))
        # SOQL's IN matched case-insensitively: answer each key asked, not the spelling stored.
        return {k: by_identity[self.key_identity(entity, k)] for k in unique
                if self.key_identity(entity, k) in by_identity}

    def key_identity(self, entity: str, key: str) -> str:
        """External ids compare case-insensitively: SOQL's `=`/IN on text ignore case, and an External
        ID field treats 'ABC' and 'abc' as one value unless it is made "Unique, case sensitive"
        (developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_comparisonoperators.htm).
        Spaces and width count."""
        return key.casefold()

    def fetch(self, entity: str, ids: Sequence[str]) -> dict[str, Record]:
        """`SupportsFetch`: these records as they are now, in the shape a read gives (see the docstring)."""
        sobject = self._object(entity)
        fields = ", ".join(self._select_fields(entity))
        # Anything but a 15/18-character id would make the whole query fail (INVALID_QUERY_FILTER_OPERATOR).
        unique = list(dict.fromkeys(i for i in ids if _SF_ID.fullmatch(i)))
        found: list[Record] = []
        for start in range(0, len(unique), 200):
            values = ", ".join(soql_string(i) for i in unique[start : start + 200])
            soql = f"SELECT {fields} FROM {sobject} WHERE Id IN ({values}) ORDER BY Id"
            found += [self._row_record(row) for row in self._query_all(soql)]
        return {record.id: record for record in self._with_items(entity, found)}

    @staticmethod
    def _row_record(row: dict[str, Any]) -> Record:
        return Record(
            str(row["Id"]),
            parse_datetime(str(row["SystemModstamp"])),
            {k: v for k, v in strip_attributes(row).items() if k != "Id"},
        )

    def delete_modes(self, entity: str) -> frozenset[str]:
        """`SupportsDelete`: see the module docstring."""
        self._object(entity)
        return frozenset({"delete"})

    def delete(self, entity: str, ids: Sequence[str], *, mode: str) -> list[WriteResult]:
        sobject = self._object(entity)
        if mode != "delete":
            raise ProtocolError(f"salesforce cannot {mode} records", system=self.context.name)
        results: list[WriteResult] = []
        for record_id in ids:
            # Deleting again answers 404: a retried DELETE leaves the same state.
            result = self.http.request("DELETE", f"{self.base}/sobjects/{sobject}/{record_id}", endpoint="sobjects",
                                       return_statuses=(400, 404))
            self._note_usage(result.response)
            body = result.body
            first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
            code = str(first.get("errorCode", ""))
            if result.response.status_code < 300 or code in ("NOT_FOUND", "ENTITY_IS_DELETED"):
                results.append(WriteResult(record_id, record_id, WriteAction.UPDATED))
            else:
                results.append(WriteResult(record_id, record_id, error=RecordError(
                    code or str(result.response.status_code), str(first.get("message", "delete refused")))))
        return results

    # ---- reading -------------------------------------------------------------------------
    def _object(self, entity: str) -> str:
        self.spec(entity)  # UnknownEntity listing the valid names when there is none
        return self._objects[entity]

    def _select_fields(self, entity: str) -> list[str]:
        s = self.settings
        extra = s.extra_fields.get(entity, [])
        if entity in s.objects:
            obj = s.objects[entity]
            return ["Id", *dict.fromkeys([*obj.fields, obj.external_id, "SystemModstamp", *extra])]
        if entity == "customer":
            return ["Id", *dict.fromkeys([*ACCOUNT_FIELDS, s.account_external_id, *extra])]
        if entity == "opportunity":
            return [
                "Id",
                *dict.fromkeys([*OPPORTUNITY_FIELDS, s.opportunity_external_id, *extra]),
                f"Account.{s.account_external_id}",
            ]
        return ["Id", *dict.fromkeys([*ORDER_FIELDS, s.order_external_id, *extra]),
                f"Account.{s.account_external_id}"]

    def discover(self, entities: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`SupportsDiscovery`: `GET sobjects/{SObject}/describe` (REST API Developer Guide, "sObject
        Describe"): the entity's fields with createable/updateable, custom (`__c`) and references.

        Listed: the fields this connector reads and writes for the entity, plus every custom field of
        the object (add the ones a mapping uses to `extra_fields` so they are read too).
        """
        out: dict[str, dict[str, Any]] = {}
        for entity in entities:
            spec = self.spec(entity)
            sobject = self._objects[entity]
            described = self._describe(sobject)
            mine = set(spec.fields or ())
            fields = {
                name: info for name, info in described.items()
                if name in mine or info["custom"] or name in SYSTEM_READ_ONLY or name == "Id"
            }
            for rel, target in (("Account", "Account"),):  # external-id references the connector accepts
                if rel in mine:
                    fields[rel] = field_info("reference", label=rel, reference=target)
            if entity == "sales_order":
                item_fields = self._describe("OrderItem")
                wanted = spec.child_fields.get(ITEMS, frozenset())
                items = {n: i for n, i in item_fields.items() if n in wanted or i["custom"]}
                items["Product2"] = field_info("reference", label="Product (by external id)", reference="Product2")
                fields[ITEMS] = field_info("children", label="OrderItems", items=items)
            out[entity] = {"native_name": sobject, "key_field": spec.key_field, "source": "describe",
                           "fields": fields}
        return out

    def _describe(self, sobject: str) -> dict[str, dict[str, Any]]:
        body = self._get(f"{self.base}/sobjects/{sobject}/describe")
        if not isinstance(body, dict) or not isinstance(body.get("fields"), list):
            raise ProtocolError(f"describe of {sobject} has no fields", system=self.context.name)
        return {
            str(f["name"]): field_info(
                str(f.get("type")), label=f.get("label"), createable=bool(f.get("createable")),
                updateable=bool(f.get("updateable")), custom=bool(f.get("custom")),
                required=not f.get("nillable", True) and bool(f.get("createable")),
                reference=(f.get("referenceTo") or [None])[0],
            )
            for f in body["fields"] if isinstance(f, dict) and f.get("name")
        }

    def _get(self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:
        result = self.http.request("GET", path, params=params, headers=headers, endpoint="query")
        self._note_usage(result.response)
        return result.body

    def _note_usage(self, response: httpx.Response) -> None:
        m = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if m:
            self.api_usage = (int(m.group(1)), int(m.group(2)))

    def _batches(self, soql: str, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """The query's record batches, following nextRecordsUrl until done (a server-side snapshot)."""
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"}
        body = self._get(f"{self.base}/query", params={"q": soql}, headers=headers)
        while True:
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                raise ProtocolError("query answer without records", system=self.context.name)
            yield body["records"]
            if body.get("done", True):
                return
            next_url = body.get("nextRecordsUrl")
            if not next_url:
                raise ProtocolError("query not done but no nextRecordsUrl", system=self.context.name)
            body = self._get(str(next_url), headers=headers)

    def _query_all(self, soql: str) -> list[dict[str, Any]]:
        return [row for batch in self._batches(soql, self.settings.query_batch_size) for row in batch]

    def _pages(self, entity: str, soql: str, page_size: int, until: Cursor | None) -> Iterator[Page]:
        size = max(1, page_size)
        batch_size = max(1, min(self.settings.query_batch_size, size))
        pending: list[Record] = []
        yielded = False
        for batch in self._batches(soql, batch_size):
            for row in batch:
                record = self._row_record(row)
                if until is not None and until.is_before(record.updated_at, record.id):
                    continue
                pending.append(record)
            while len(pending) >= size:
                chunk, pending = pending[:size], pending[size:]
                yielded = True
                yield Page(self._with_items(entity, chunk), chunk[-1].cursor())
        if pending or not yielded:
            yield Page(self._with_items(entity, pending), pending[-1].cursor() if pending else None)

    def _with_items(self, entity: str, records: list[Record]) -> list[Record]:
        """Orders get their OrderItems (one query per page, ≤ 200 order ids per IN list)."""
        if entity != "sales_order" or not records:
            return records
        s = self.settings
        items: dict[str, list[dict[str, Any]]] = {r.id: [] for r in records}
        fields = ", ".join(
            ["Id", *dict.fromkeys([*ORDER_ITEM_FIELDS, s.order_item_external_id]), f"Product2.{s.product_external_id}"]
        )
        ids = list(items)
        for start in range(0, len(ids), 200):
            values = ", ".join(soql_string(i) for i in ids[start : start + 200])
            soql = f"SELECT {fields} FROM OrderItem WHERE OrderId IN ({values}) ORDER BY OrderId, Id"
            for row in self._query_all(soql):
                item = {k: v for k, v in strip_attributes(row).items() if k not in ("Id", "OrderId")}
                items[str(row["OrderId"])].append(item)
        return [Record(r.id, r.updated_at, {**r.data, ITEMS: items[r.id]}) for r in records]

    # ---- writing -------------------------------------------------------------------------
    def _upsert_collection(self, sobject: str, ext: str, records: list[dict[str, Any]]) -> list[Any]:
        path = f"{self.base}/composite/sobjects/{sobject}/{ext}"
        # Upsert by external id is idempotent: retrying a lost answer lands on the same records.
        result = self.http.request(
            "PATCH",
            path,
            json={"allOrNone": self.settings.all_or_none, "records": records},
            endpoint="composite",
            idempotent=True,
        )
        self._note_usage(result.response)
        answers = result.body
        if not isinstance(answers, list) or len(answers) != len(records):
            raise ProtocolError(
                f"collection upsert answered {type(answers).__name__} for {len(records)} records",
                system=self.context.name,
            )
        return answers

    @staticmethod
    def _result(request: WriteRequest, answer: Any) -> WriteResult:
        if isinstance(answer, dict) and answer.get("success"):
            action = WriteAction.CREATED if answer.get("created") else WriteAction.UPDATED
            return WriteResult(request.source_id, str(answer["id"]), action)
        errors = answer.get("errors") if isinstance(answer, dict) else None
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        code = str(first.get("statusCode", "UNKNOWN"))
        fields = first.get("fields") or []
        return WriteResult(
            request.source_id,
            request.target_id,
            error=RecordError(
                code,
                str(first.get("message", "upsert failed")),
                fields[0] if fields else None,
                transient=code in TRANSIENT_RECORD_CODES,
            ),
        )

    def _order_price_books(self, wire: list[tuple[int, dict[str, Any]]]) -> None:
        """New orders get their price book; existing ones never have it re-sent (create-only for us)."""
        ext = self.settings.order_external_id
        existing = {k.casefold() for k in self.lookup("sales_order", [str(body[ext]) for _, body in wire])}
        for _, body in wire:
            if str(body[ext]).casefold() in existing:
                for name in ORDER_CREATE_ONLY:
                    body.pop(name, None)
            elif not body.get("Pricebook2Id"):
                book = self.pricebook.pricebook_id()
                if book is not None:
                    body["Pricebook2Id"] = book

    def _existing_items(self, keys: Sequence[str]) -> set[str]:
        ext = self.settings.order_item_external_id
        found: set[str] = set()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            values = ", ".join(soql_string(k) for k in unique[start : start + 100])
            for row in self._query_all(f"SELECT Id, {ext} FROM OrderItem WHERE {ext} IN ({values})"):
                found.add(str(row[ext]).casefold())
        return found

    def _write_items(self, batch: Sequence[WriteRequest], results: list[WriteResult | None]) -> None:
        """Upsert the items of every order whose header landed; an item failure fails its order.

        A new item is priced from its product's entry in the price book (`PricebookEntryId`) and names
        its order; an existing item is sent without those create-only fields (orders.py).
        """
        s = self.settings
        planned: list[tuple[int, str, dict[str, Any]]] = []
        for i, request in enumerate(batch):
            result = results[i]
            if result is None or not result.ok:
                continue
            key = str(self.request_key(request, s.order_external_id))
            for n, item in enumerate(request.data.get(ITEMS) or [], start=1):
                planned.append((i, str(item.get(s.order_item_external_id) or f"{key}#{n}"), item))
        existing = self._existing_items([item_key for _, item_key, _ in planned])
        new_products = [
            p for _, item_key, item in planned
            if item_key.casefold() not in existing and not item.get("PricebookEntryId")
            and (p := self.pricebook.product_key(item))
        ]
        entries = self.pricebook.resolve(new_products) if new_products else {}
        wire: list[tuple[int, dict[str, Any]]] = []
        for i, item_key, item in planned:
            current = results[i]
            if current is None or not current.ok:
                continue
            if item_key.casefold() in existing:
                body = to_wire("OrderItem", item, s.order_item_external_id, item_key, ITEM_READ_ONLY | ITEM_CREATE_ONLY)
            else:
                body = to_wire("OrderItem", item, s.order_item_external_id, item_key,
                               ITEM_READ_ONLY | {"Product2", "Product2Id"})
                product = self.pricebook.product_key(item)
                entry = item.get("PricebookEntryId") or (entries.get(product) if product else None)
                if not entry:
                    results[i] = WriteResult(current.source_id, current.target_id, error=RecordError(
                        "NO_PRICEBOOK_ENTRY",
                        f"order item {item_key}: no active PricebookEntry for product "
                        f"{s.product_external_id}={product} in price book {self.pricebook.pricebook_id()}",
                        "PricebookEntryId",
                    ))
                    continue
                body["PricebookEntryId"] = entry
                body["Order"] = {s.order_external_id: str(self.request_key(batch[i], s.order_external_id))}
            wire.append((i, body))
        wire = [(i, body) for i, body in wire if (r := results[i]) is not None and r.ok]
        for start in range(0, len(wire), COLLECTION_LIMIT):
            chunk = wire[start : start + COLLECTION_LIMIT]
            answers = self._upsert_collection("OrderItem", s.order_item_external_id, [b for _, b in chunk])
            for (i, _), answer in zip(chunk, answers, strict=True):
                current = results[i]
                if current is None or not current.ok:
                    continue
                failed = self._result(batch[i], answer)
                if failed.error is not None:
                    results[i] = WriteResult(
                        current.source_id,
                        current.target_id,
                        error=RecordError(
                            failed.error.code,
                            f"order item: {failed.error.message}",
                            failed.error.field,
                            failed.error.transient,
                        ),
                    )
