"""In-memory Salesforce org: the sObjects the salesforce connector uses, with their field rules.

Records are dicts keyed by API field name; datetimes are aware UTC datetimes, dates are `date`s,
numbers Decimals. Failures of one record raise `SfRecordError(statusCode, message, fields)`; the
app renders them as Salesforce does (an array at the top level, `errors` inside collections).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from erphub.sandbox.fakedata import PRODUCTS
from erphub.sandbox.salesforce.soql import Query, SoqlError, check_types, matches, parse, sort_records

SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


@dataclass(frozen=True)
class FieldDef:
    type: str  # id, string, datetime, date, double, boolean, reference, picklist
    length: int | None = None
    required: bool = False
    readonly: bool = False  # neither createable nor updateable
    create_only: bool = False  # createable, not updateable (OrderItem.OrderId, .PricebookEntryId)
    external_id: bool = False
    reference_to: str | None = None
    values: tuple[str, ...] = ()  # picklist values


def _s(length: int, **kw: Any) -> FieldDef:
    return FieldDef("string", length, **kw)


_SYSTEM = {
    "Id": FieldDef("id", readonly=True),
    "IsDeleted": FieldDef("boolean", readonly=True),
    "CreatedDate": FieldDef("datetime", readonly=True),
    "LastModifiedDate": FieldDef("datetime", readonly=True),
    "SystemModstamp": FieldDef("datetime", readonly=True),
    "OwnerId": FieldDef("reference", reference_to="User"),
}

# [unconf] field lists: standard fields per the reference plus the custom fields the hub uses.
SCHEMA: dict[str, dict[str, FieldDef]] = {
    "Account": {
        **_SYSTEM,
        "Name": _s(255, required=True),
        "AccountNumber": _s(40),
        "Phone": _s(40),
        "Website": _s(255),
        "BillingStreet": _s(255),
        "BillingCity": _s(40),
        "BillingState": _s(80),
        "BillingPostalCode": _s(20),
        "BillingCountry": _s(80),
        "Type": _s(40),
        "Industry": _s(40),
        "Description": _s(32000),
        "CurrencyIsoCode": FieldDef("picklist", values=("CNY", "USD")),
        "CRM_Code__c": _s(50, external_id=True),
        "ERP_Number__c": _s(50, external_id=True),
        "Credit_Code__c": _s(18),
        "Short_Name__c": _s(80),
        "Customer_Group__c": _s(20),
        "Salesperson__c": _s(20),
        "Contact_Name__c": _s(80),
        "Email__c": _s(80),
        "Account_Status__c": _s(20),
        "Outstanding_Balance__c": FieldDef("double"),
    },
    "Opportunity": {
        **_SYSTEM,
        "Name": _s(120, required=True),
        "AccountId": FieldDef("reference", reference_to="Account"),
        "StageName": FieldDef(
            "picklist",
            required=True,
            values=(
                "Prospecting",
                "Qualification",
                "Needs Analysis",
                "Proposal/Price Quote",
                "Closed Won",
                "Closed Lost",
            ),
        ),
        "CloseDate": FieldDef("date", required=True),
        "Amount": FieldDef("double"),
        "CurrencyIsoCode": FieldDef("picklist", values=("CNY", "USD")),
        "Description": _s(32000),
        "Opp_No__c": _s(50, external_id=True),
        "Salesperson__c": _s(20),
    },
    "Order": {
        **_SYSTEM,
        "OrderNumber": _s(30, readonly=True),
        "AccountId": FieldDef("reference", required=True, reference_to="Account"),
        "EffectiveDate": FieldDef("date", required=True),
        "Status": FieldDef("picklist", required=True, values=("Draft", "Activated")),
        "Pricebook2Id": FieldDef("reference", reference_to="Pricebook2"),
        "CurrencyIsoCode": FieldDef("picklist", values=("CNY", "USD")),
        "Description": _s(32000),
        "TotalAmount": FieldDef("double", readonly=True),
        "Order_No__c": _s(50, external_id=True),
        "Salesperson__c": _s(20),
        "Delivery_Status__c": _s(20),
        "Shipped_Date__c": FieldDef("date"),
    },
    "OrderItem": {
        **{k: v for k, v in _SYSTEM.items() if k != "OwnerId"},
        "OrderId": FieldDef("reference", required=True, create_only=True, reference_to="Order"),
        # Set from the price book entry; not createable (the entry names the product).
        "Product2Id": FieldDef("reference", readonly=True, reference_to="Product2"),
        "PricebookEntryId": FieldDef("reference", required=True, create_only=True, reference_to="PricebookEntry"),
        "Quantity": FieldDef("double", required=True),
        "UnitPrice": FieldDef("double", required=True),
        "TotalPrice": FieldDef("double", readonly=True),
        "Description": _s(255),
        "Line_Key__c": _s(80, external_id=True),
        "Tax_Rate__c": FieldDef("double"),
        "Unit__c": _s(20),
        "Shipped_Quantity__c": FieldDef("double"),
    },
    "Product2": {
        **{k: v for k, v in _SYSTEM.items() if k != "OwnerId"},
        "Name": _s(255, required=True),
        "ProductCode": _s(255),
        "SKU__c": _s(50, external_id=True),
        "IsActive": FieldDef("boolean"),
    },
    "Pricebook2": {
        **{k: v for k, v in _SYSTEM.items() if k != "OwnerId"},
        "Name": _s(255, required=True),
        "IsStandard": FieldDef("boolean", readonly=True),
    },
    "PricebookEntry": {
        **{k: v for k, v in _SYSTEM.items() if k != "OwnerId"},
        "Pricebook2Id": FieldDef("reference", required=True, reference_to="Pricebook2"),
        "Product2Id": FieldDef("reference", required=True, reference_to="Product2"),
        "UnitPrice": FieldDef("double", required=True),
        "IsActive": FieldDef("boolean"),
    },
}
KEY_PREFIX = {
    "Account": "001",
    "Opportunity": "006",
    "Order": "801",
    "OrderItem": "802",
    "Product2": "01t",
    "Pricebook2": "01s",
    "PricebookEntry": "01u",
    "User": "005",
}
DESCRIBABLE = ("Account", "Opportunity", "Order", "OrderItem", "Product2", "Pricebook2", "PricebookEntry")
ORG_ID = "00D5g000004ORGAEAO"
USER_ID = "0055g000003USERAAA"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id18(id15: str) -> str:
    """The case-safe 18-character form of a 15-character Salesforce Id."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX[bits]
    return id15 + suffix


class SfRecordError(Exception):
    def __init__(self, status_code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.fields = fields or []

    def as_collection_error(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}

    def as_top_level(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.status_code, "fields": self.fields}


@dataclass
class UpsertOutcome:
    id: str | None = None
    created: bool = False
    error: SfRecordError | None = None
    duplicates: list[str] = field(default_factory=list)  # ids when several records match


def fmt_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def to_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return fmt_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


class SalesforceOrg:
    def __init__(
        self,
        now: Callable[[], datetime] | None = None,
        record_failure: Callable[[str, str | None], str | None] | None = None,
        custom_fields: dict[str, dict[str, FieldDef]] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._now = now or (lambda: datetime.now(UTC))
        self._record_failure = record_failure or (lambda path, key: None)
        self._counter: dict[str, int] = {}
        # Each org has its own copy: custom fields (`__c`) are configured per sandbox, as in a real org.
        self.schema: dict[str, dict[str, FieldDef]] = {name: dict(fields) for name, fields in SCHEMA.items()}
        for sobject, extra in (custom_fields or {}).items():
            if sobject not in self.schema:
                raise ValueError(f"custom_fields: no sObject {sobject!r}; valid: {sorted(self.schema)}")
            for name, definition in extra.items():
                if not name.endswith("__c"):
                    raise ValueError(f"custom field {sobject}.{name} must end in __c")
                self.schema[sobject][name] = definition
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self._order_number = 100
        self._seed_catalogue()

    # ---- basics --------------------------------------------------------------------------
    def now(self) -> datetime:
        value = self._now().astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    def new_id(self, sobject: str) -> str:
        with self._lock:
            n = self._counter.get(sobject, 0) + 1
            self._counter[sobject] = n
            # Fixed-width digits keep string order equal to creation order.
            return id18(f"{KEY_PREFIX[sobject]}5g00{n:08d}")

    def _seed_catalogue(self) -> None:
        now = self.now()
        book = self._insert_raw("Pricebook2", {"Name": "Standard Price Book", "IsStandard": True}, now)
        self.standard_pricebook = book
        for product in PRODUCTS:
            pid = self._insert_raw(
                "Product2",
                {"Name": product.name, "ProductCode": product.sku, "SKU__c": product.sku, "IsActive": True},
                now,
            )
            self._insert_raw(
                "PricebookEntry",
                {"Pricebook2Id": book, "Product2Id": pid, "UnitPrice": product.price, "IsActive": True},
                now,
            )

    def _insert_raw(self, sobject: str, values: dict[str, Any], when: datetime) -> str:
        record_id = self.new_id(sobject)
        record: dict[str, Any] = dict.fromkeys(self.schema[sobject])
        record.update(values)
        record.update(
            {
                "Id": record_id,
                "IsDeleted": False,
                "CreatedDate": when,
                "LastModifiedDate": when,
                "SystemModstamp": when,
            }
        )
        if "OwnerId" in record:
            record["OwnerId"] = USER_ID
        self.objects[sobject][record_id] = record
        return record_id

    def describe(self, sobject: str) -> dict[str, FieldDef]:
        schema = self.schema.get(sobject)
        if schema is None or sobject not in DESCRIBABLE:
            raise SfRecordError(
                "NOT_FOUND", f"The requested resource does not exist: sObject type '{sobject}'"
            )
        return schema

    def describe_json(self, sobject: str) -> dict[str, Any]:
        """`GET sobjects/{SObject}/describe` as the REST API answers it (the keys a client reads).

        Field keys per the REST API Developer Guide, "sObject Describe" (name, label, type, length,
        createable, updateable, custom, nillable, externalId, referenceTo, relationshipName,
        picklistValues); the org's own custom fields are included.
        """
        schema = self.describe(sobject)
        fields = []
        for name, d in schema.items():
            system = name in SYSTEM_FIELDS
            fields.append({
                "name": name,
                "label": name.removesuffix("__c").replace("_", " "),
                "type": d.type,
                "length": d.length or 0,
                "createable": not (d.readonly or system),
                "updateable": not (d.readonly or d.create_only or system),
                "custom": name.endswith("__c"),
                "nillable": not d.required,
                "externalId": d.external_id,
                "idLookup": d.external_id or name == "Id",
                "referenceTo": [d.reference_to] if d.reference_to else [],
                "relationshipName": name[:-2] if d.type == "reference" and name.endswith("Id") else None,
                "picklistValues": [{"value": v, "label": v, "active": True} for v in d.values],
            })
        return {"name": sobject, "label": sobject, "custom": sobject.endswith("__c"), "createable": True,
                "updateable": True, "queryable": True, "keyPrefix": KEY_PREFIX.get(sobject), "fields": fields}

    def global_describe(self) -> dict[str, Any]:
        return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            {"name": name, "label": name, "custom": name.endswith("__c"), "keyPrefix": KEY_PREFIX.get(name),
             "queryable": True, "createable": True, "updateable": True}
            for name in DESCRIBABLE]}

    # ---- query ---------------------------------------------------------------------------
    def _getter(self, sobject: str) -> Callable[[dict[str, Any], str], Any]:
        schema = self.schema[sobject]

        def get(record: dict[str, Any], name: str) -> Any:
            if "." in name:
                rel, sub = name.split(".", 1)
                ref_field = self._relationship_field(sobject, rel)
                target = schema[ref_field].reference_to or ""
                parent = self.objects.get(target, {}).get(record.get(ref_field) or "")
                return None if parent is None else parent.get(self._field_name(target, sub))
            return record.get(self._field_name(sobject, name))

        return get

    def _field_name(self, sobject: str, name: str) -> str:
        """Field names are case-insensitive in SOQL; return the API spelling."""
        for candidate in self.schema[sobject]:
            if candidate.lower() == name.lower():
                return candidate
        raise SoqlError(
            "INVALID_FIELD",
            f"No such column '{name}' on entity '{sobject}'. If you are attempting "
            "to use a custom field, be sure to append the '__c' after the custom field name.",
        )

    def _relationship_field(self, sobject: str, rel: str) -> str:
        for name, definition in self.schema[sobject].items():
            if definition.type == "reference" and name.endswith("Id") and name[:-2].lower() == rel.lower():
                if definition.reference_to not in self.objects:
                    break
                return name
        raise SoqlError(
            "INVALID_FIELD",
            f"Didn't understand relationship '{rel}' in field path. If you are "
            "attempting to use a custom relationship, be sure to append the '__r'",
        )

    def _type_of(self, sobject: str) -> Callable[[str], str]:
        def type_of(name: str) -> str:
            if "." in name:
                rel, sub = name.split(".", 1)
                target = self.schema[sobject][self._relationship_field(sobject, rel)].reference_to or ""
                return self.schema[target][self._field_name(target, sub)].type
            kind = self.schema[sobject][self._field_name(sobject, name)].type
            return {"reference": "id", "picklist": "string"}.get(kind, kind)

        return type_of

    def run_query(self, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The full result (a query cursor is a snapshot) as JSON-ready records."""
        query = parse(soql)
        with self._lock:
            canonical = next((n for n in self.objects if n.lower() == query.sobject.lower()), None)
            if canonical is None:
                raise SoqlError(
                    "INVALID_TYPE",
                    f"sObject type '{query.sobject}' is not supported. If you are "
                    "attempting to use a custom object, be sure to append the '__c' after the entity name.",
                )
            query.sobject = canonical
            type_of = self._type_of(canonical)
            for name in query.fields:
                type_of(name)
            for name, _, _ in query.order_by:
                type_of(name)
            check_types(query.where, type_of)
            get = self._getter(canonical)
            rows = [
                r
                for r in self.objects[canonical].values()
                if (include_deleted or not r["IsDeleted"]) and matches(query.where, r, get)
            ]
            rows = sort_records(rows, query.order_by, get)
            rows = rows[query.offset :]
            if query.limit is not None:
                rows = rows[: query.limit]
            return [self._project(canonical, query, r) for r in rows]

    def _project(self, sobject: str, query: Query, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": self.record_url(sobject, record["Id"])}}
        for name in query.fields:
            if "." in name:
                rel, sub = name.split(".", 1)
                ref_field = self._relationship_field(sobject, rel)
                target = self.schema[sobject][ref_field].reference_to or ""
                rel_name = ref_field[:-2]
                parent = self.objects[target].get(record.get(ref_field) or "")
                if parent is None:
                    out[rel_name] = None
                    continue
                holder = out.get(rel_name) or {
                    "attributes": {"type": target, "url": self.record_url(target, parent["Id"])}
                }
                api_sub = self._field_name(target, sub)
                holder[api_sub] = to_json_value(parent.get(api_sub))
                out[rel_name] = holder
            else:
                api = self._field_name(sobject, name)
                out[api] = to_json_value(record.get(api))
        return out

    api_version = "59.0"

    def record_url(self, sobject: str, record_id: str) -> str:
        return f"/services/data/v{self.api_version}/sobjects/{sobject}/{record_id}"

    # ---- writes --------------------------------------------------------------------------
    def _coerce(self, sobject: str, name: str, value: Any) -> Any:
        definition = self.schema[sobject][name]
        if value is None:
            return None
        bad = SfRecordError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value}", [name]
        )
        if definition.type in ("string", "picklist", "reference", "id"):
            if isinstance(value, dict | list):
                raise bad
            text = str(value)
            if definition.length is not None and len(text) > definition.length:
                raise SfRecordError(
                    "STRING_TOO_LONG",
                    f"{name}: data value too large: {text[:40]} (max length={definition.length})",
                    [name],
                )
            if definition.type == "picklist" and definition.values and text not in definition.values:
                raise SfRecordError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{name}: bad value for restricted picklist field: {text}",
                    [name],
                )
            return text
        if definition.type == "double":
            if isinstance(value, bool):
                raise bad
            try:
                number = Decimal(str(value))
            except InvalidOperation:
                raise bad from None
            if not number.is_finite():
                raise bad
            return number
        if definition.type == "boolean":
            if not isinstance(value, bool):
                raise bad
            return value
        if definition.type == "date":
            try:
                return date.fromisoformat(str(value)[:10])
            except ValueError:
                raise bad from None
        if definition.type == "datetime":
            try:
                return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise bad from None
        return value

    def _resolve_relationship(self, sobject: str, rel: str, ref: Any) -> tuple[str, str]:
        """`"Account": {"CRM_Code__c": "X"}` in a body: the referenced record by its external id."""
        ref_field = next(
            (n for n, d in self.schema[sobject].items() if d.type == "reference" and n[:-2] == rel), None
        )
        if ref_field is None or not isinstance(ref, dict):
            raise SfRecordError(
                "INVALID_FIELD", f"No such column '{rel}' on sobject of type {sobject}", [rel]
            )
        target = self.schema[sobject][ref_field].reference_to or ""
        keys = [k for k in ref if k != "attributes"]
        if len(keys) != 1 or not self.schema[target].get(keys[0], FieldDef("x")).external_id:
            raise SfRecordError(
                "INVALID_FIELD",
                f"Foreign key external ID field for {rel} must be an external id field of {target}",
                [rel],
            )
        ext, value = keys[0], ref[keys[0]]
        found = [r["Id"] for r in self.objects[target].values() if not r["IsDeleted"] and r.get(ext) == value]
        if not found:
            raise SfRecordError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not found for field {ext} in entity {target}",
                [rel],
            )
        if len(found) > 1:
            raise SfRecordError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} matched more than one {target} record for field {ext}",
                [rel],
            )
        return ref_field, found[0]

    def _values(self, sobject: str, body: dict[str, Any], creating: bool) -> dict[str, Any]:
        schema = self.schema[sobject]
        values: dict[str, Any] = {}
        for key, value in body.items():
            if key == "attributes":
                continue
            if key not in schema and isinstance(value, dict):
                ref_field, ref_id = self._resolve_relationship(sobject, key, value)
                values[ref_field] = ref_id
                continue
            if key not in schema:
                raise SfRecordError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {sobject}", [key]
                )
            values[key] = self._coerce(sobject, key, value)
        # Not createable, or not updateable on an update (also when reached through a relationship).
        refused = [k for k in values if schema[k].readonly or (schema[k].create_only and not creating)]
        if refused:
            raise SfRecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(refused)}. "
                "Please check the security settings of this field and verify that it is "
                "read/write for your profile or permission set.",
                refused,
            )
        for key, value in list(values.items()):
            definition = schema[key]
            if (
                definition.type == "reference"
                and value is not None
                and definition.reference_to in self.objects
            ):
                target = self.objects[definition.reference_to or ""].get(value)
                if target is None or target["IsDeleted"]:
                    raise SfRecordError(
                        "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {key}", [key]
                    )
        if sobject == "OrderItem":
            self._order_item_defaults(values, creating)
        if creating:
            if sobject == "Order" and "Status" not in values:
                values["Status"] = "Draft"
            missing = [n for n, d in schema.items() if d.required and values.get(n) in (None, "")]
            if missing:
                raise SfRecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
                )
        else:
            empty = [n for n, d in schema.items() if d.required and n in values and values[n] in (None, "")]
            if empty:
                raise SfRecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(empty)}]", empty
                )
        return values

    def _order_item_defaults(self, values: dict[str, Any], creating: bool) -> None:
        """An item is priced from a PricebookEntry of its order's price book; the product follows the entry.

        An Order without Pricebook2Id cannot take items, and an entry of another price book is
        refused (Salesforce Object Reference, Order / OrderItem: "PricebookEntryId ... must be in the
        price book of the order"). The error code and text are [unverifiable] here.
        """
        if not creating:
            return
        entry = self.objects["PricebookEntry"].get(values.get("PricebookEntryId") or "")
        order = self.objects["Order"].get(values.get("OrderId") or "")
        if entry is None or order is None:
            return  # REQUIRED_FIELD_MISSING follows
        if not order.get("Pricebook2Id"):
            raise SfRecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: PricebookEntryId (pricebook entry requires the order to have a price book)",
                ["PricebookEntryId"],
            )
        if entry["Pricebook2Id"] != order["Pricebook2Id"]:
            raise SfRecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                "field integrity exception: PricebookEntryId (pricebook entry is in a different pricebook than "
                "the one assigned to the order)",
                ["PricebookEntryId"],
            )
        values["Product2Id"] = entry["Product2Id"]

    def _check_injected(self, path: str, key: str | None) -> None:
        message = self._record_failure(path, key)
        if message is not None:
            raise SfRecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message)

    def _apply(self, sobject: str, record_id: str | None, values: dict[str, Any]) -> str:
        now = self.now()
        if record_id is None:
            if sobject == "Order":
                self._order_number += 1
                values = {
                    **values,
                    "OrderNumber": f"{self._order_number:08d}",
                    "TotalAmount": Decimal(0),
                }
            record_id = self._insert_raw(sobject, values, now)
        else:
            record = self.objects[sobject][record_id]
            record.update(values)
            record["LastModifiedDate"] = record["SystemModstamp"] = now
        if sobject == "OrderItem":
            item = self.objects["OrderItem"][record_id]
            item["TotalPrice"] = (item["Quantity"] or 0) * (item["UnitPrice"] or 0)
            self._retotal(item["OrderId"], now)
        return record_id

    def _retotal(self, order_id: str, now: datetime) -> None:
        order = self.objects["Order"].get(order_id)
        if order is None:
            return
        total = sum(
            (
                i["TotalPrice"] or Decimal(0)
                for i in self.objects["OrderItem"].values()
                if i["OrderId"] == order_id and not i["IsDeleted"]
            ),
            Decimal(0),
        )
        order["TotalAmount"] = total
        order["LastModifiedDate"] = order["SystemModstamp"] = now

    def create(self, sobject: str, body: dict[str, Any], path: str) -> str:
        with self._lock:
            self.describe(sobject)
            values = self._values(sobject, body, creating=True)
            self._check_injected(path, None)
            return self._apply(sobject, None, values)

    def update(self, sobject: str, record_id: str, body: dict[str, Any], path: str) -> None:
        with self._lock:
            self.get(sobject, record_id)
            values = self._values(sobject, body, creating=False)
            self._check_injected(path, record_id)
            self._apply(sobject, record_id, values)

    def delete(self, sobject: str, record_id: str) -> None:
        """sObject Rows DELETE: to the recycle bin (IsDeleted, seen by queryAll only); gone -> NOT_FOUND."""
        with self._lock:
            record = self.get(sobject, record_id)
            record["IsDeleted"] = True
            record["LastModifiedDate"] = record["SystemModstamp"] = self.now()

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        with self._lock:
            self.describe(sobject)
            record = self.objects[sobject].get(record_id) or next(
                (r for r in self.objects[sobject].values() if r["Id"][:15] == record_id[:15]), None
            )
            if record is None or record["IsDeleted"]:
                raise SfRecordError("NOT_FOUND", "The requested resource does not exist")
            return record

    def by_external_id(self, sobject: str, ext_field: str, value: str) -> list[str]:
        with self._lock:
            schema = self.describe(sobject)
            if ext_field == "Id":
                return [
                    r["Id"]
                    for r in self.objects[sobject].values()
                    if not r["IsDeleted"] and r["Id"][:15] == value[:15]
                ]
            if ext_field not in schema or not schema[ext_field].external_id:
                raise SfRecordError(
                    "NOT_FOUND",
                    f"Provided external ID field does not exist or is not accessible: {ext_field}",
                )
            return [
                r["Id"]
                for r in self.objects[sobject].values()
                if not r["IsDeleted"] and r.get(ext_field) == value
            ]

    def upsert(
        self, sobject: str, ext_field: str, value: str, body: dict[str, Any], path: str
    ) -> UpsertOutcome:
        """One upsert by external id: no match creates, one match updates, several refuse (300)."""
        with self._lock:
            try:
                matches_ = self.by_external_id(sobject, ext_field, value)
                if len(matches_) > 1:
                    return UpsertOutcome(duplicates=matches_)
                if ext_field in body and body[ext_field] != value:
                    raise SfRecordError(
                        "INVALID_FIELD",
                        f"The value of {ext_field} in the body does not match the external id in the URL",
                        [ext_field],
                    )
                fields = dict(body)
                if ext_field != "Id":
                    fields[ext_field] = value
                else:
                    fields.pop("Id", None)
                creating = not matches_
                values = self._values(sobject, fields, creating=creating)
                self._check_injected(path, value)
                record_id = self._apply(sobject, matches_[0] if matches_ else None, values)
                return UpsertOutcome(id=record_id, created=creating)
            except SfRecordError as exc:
                return UpsertOutcome(error=exc)

    def upsert_collection(
        self, sobject: str, ext_field: str, records: list[dict[str, Any]], all_or_none: bool, path: str
    ) -> list[dict[str, Any]]:
        with self._lock:
            self.describe(sobject)
            snapshot = copy.deepcopy(self.objects), dict(self._counter), self._order_number
            outcomes: list[UpsertOutcome] = []
            seen: dict[str, int] = {}
            for record in records:
                attrs = record.get("attributes")
                if not isinstance(attrs, dict) or not attrs.get("type"):
                    # Collections need `attributes.type` on every record (reference §3) [message unverifiable].
                    outcomes.append(
                        UpsertOutcome(error=SfRecordError("INVALID_TYPE", "Must send a concrete entity type."))
                    )
                    continue
                if attrs.get("type") != sobject:
                    outcomes.append(
                        UpsertOutcome(
                            error=SfRecordError(
                                "INVALID_TYPE", f"Record type {attrs.get('type')} does not match {sobject}"
                            )
                        )
                    )
                    continue
                value = record.get(ext_field)
                if value in (None, ""):
                    outcomes.append(
                        UpsertOutcome(
                            error=SfRecordError("MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field])
                        )
                    )
                    continue
                value = str(value)
                if value in seen:
                    outcomes.append(
                        UpsertOutcome(
                            error=SfRecordError(
                                "DUPLICATE_EXTERNAL_ID",
                                f"Duplicate external id specified: {value}",
                                [ext_field],
                            )
                        )
                    )
                    continue
                seen[value] = len(outcomes)
                body = {k: v for k, v in record.items() if k not in ("attributes", ext_field)}
                outcome = self.upsert(sobject, ext_field, value, body, path)
                if outcome.duplicates:
                    outcome = UpsertOutcome(
                        error=SfRecordError(
                            "DUPLICATE_EXTERNAL_ID",
                            f"{ext_field}: more than one record found for external id "
                            f"field: {outcome.duplicates}",
                            [ext_field],
                        )
                    )
                outcomes.append(outcome)
            failed = any(o.error is not None for o in outcomes)
            if all_or_none and failed:
                self.objects, self._counter, self._order_number = snapshot
                rolled = SfRecordError(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all "
                    "records were valid and the request was using AllOrNone header",
                )
                outcomes = [o if o.error else UpsertOutcome(error=rolled) for o in outcomes]
            results: list[dict[str, Any]] = []
            for o in outcomes:
                if o.error is not None:
                    results.append({"success": False, "errors": [o.error.as_collection_error()]})
                else:
                    results.append({"id": o.id, "success": True, "errors": [], "created": o.created})
            return results

    # ---- test helpers --------------------------------------------------------------------
    def seed(self, sobject: str, values: dict[str, Any], *, modstamp: datetime | None = None) -> str:
        """Insert directly (tests, demo); duplicates of external ids are allowed here on purpose."""
        with self._lock:
            coerced = {k: self._coerce(sobject, k, v) for k, v in values.items()}
            when = (modstamp or self.now()).astimezone(UTC)
            record_id = self._apply(sobject, None, coerced)
            record = self.objects[sobject][record_id]
            record["CreatedDate"] = record["LastModifiedDate"] = record["SystemModstamp"] = when
            return record_id

    def count(self, sobject: str, field_name: str, value: Any) -> int:
        with self._lock:
            return sum(
                1 for r in self.objects[sobject].values() if not r["IsDeleted"] and r.get(field_name) == value
            )

    def touch(self, sobject: str, record_id: str, when: datetime | None = None) -> None:
        with self._lock:
            record = self.objects[sobject][record_id]
            record["LastModifiedDate"] = record["SystemModstamp"] = (when or self.now()) + timedelta(0)
