"""The Kingdee forms erphub reads and writes, per SCHEMAS.md: field keys, references, sub-heads, entries.

The shapes drive three things: the FieldKeys of a query, how its flat rows are regrouped into a
nested Save-Model-shaped record, and the EntitySpec the mapping compiler checks against.
"""

from __future__ import annotations

from dataclasses import dataclass

from erphub.core.records import Direction, EntitySpec

BOTH = frozenset({Direction.READ, Direction.WRITE})


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    ref_key: str | None = None  # references: the code key as SCHEMAS.md spells it (FNumber / FNUMBER)
    kind: str = "text"  # "text" | "number" | "date" | "datetime" | "int" | "status"

    def query_key(self) -> str:
        return f"{self.key}.{self.ref_key}" if self.ref_key else self.key


@dataclass(frozen=True, slots=True)
class SubHead:
    key: str
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    pk: str
    fields: tuple[Field, ...]
    # Field pairing a sent line with an existing one on update (lines.py); None pairs by position.
    match_key: str | None = None

    def pk_query_key(self) -> str:
        return f"{self.key}_{self.pk}"


@dataclass(frozen=True, slots=True)
class Shape:
    entity: str
    form_id: str
    pk: str
    number_key: str
    status_key: str | None
    header: tuple[Field, ...]
    subheads: tuple[SubHead, ...] = ()
    entry: Entry | None = None
    org_fields: tuple[str, ...] = ()  # filled with the configured org on create when absent
    modify_key: str = "FModifyDate"
    description: str = ""
    # Dates that state changes set without touching FModifyDate (Audit sets FApproveDate, Cancel
    # FCancelDate, Forbid FForbidDate: vendor-gaps.md). A record's change time is the latest of these
    # and FModifyDate, so a document audited after it was read is read again.
    state_keys: tuple[str, ...] = ()

    def stamp_keys(self) -> tuple[str, ...]:
        """Every date a change of the record sets: the change predicate covers them all."""
        return (self.modify_key, *self.state_keys)

    # Fields the server maintains; never sent in a Model.
    def readonly(self) -> frozenset[str]:
        keys = {self.modify_key, "FCreateDate", "FForbidStatus", *self.state_keys}
        if self.status_key:
            keys.add(self.status_key)
        return frozenset(keys)

    def field_keys(self) -> list[str]:
        """FieldKeys of a full read, header first, then sub-head and entry columns."""
        keys = [self.pk] + [f.query_key() for f in self.header] + list(self.state_keys)
        for sub in self.subheads:
            keys += [f.query_key() for f in sub.fields]
        if self.entry is not None:
            keys.append(self.entry.pk_query_key())
            keys += [f.query_key() for f in self.entry.fields]
        return keys

    def order_string(self) -> str:
        order = f"{self.modify_key} ASC, {self.pk} ASC"
        if self.entry is not None:
            order += f", {self.entry.pk_query_key()} ASC"
        return order

    def spec(self) -> EntitySpec:
        top = {self.pk, *(f.key for f in self.header), *(s.key for s in self.subheads), *self.state_keys}
        if self.entry is not None:
            top.add(self.entry.key)
        children = {s.key: frozenset(f.key for f in s.fields) for s in self.subheads}
        if self.entry is not None:
            children[self.entry.key] = frozenset({self.entry.pk, *(f.key for f in self.entry.fields)})
        return EntitySpec(
            name=self.entity,
            native_name=self.form_id,
            directions=BOTH,
            fields=frozenset(top),
            key_field=self.number_key,
            child_fields=children,
            description=self.description,
            # NO_SUBMIT_DATE: Submit and UnAudit set no date on any standard form, so a document
            # submitted or un-audited after it was read is not seen by the change predicate.
            state_changes_timestamped=False,
        )


# K/3 Cloud's standard dates of a state change [vendor-gaps.md: "Audit does not change FModifyDate;
# FApproveDate records it. Un-audit, forbid and cancel set their own dates"]: bills carry FApproveDate
# and FCancelDate, base data FApproveDate and FForbidDate.
BILL_STATE_KEYS = ("FApproveDate", "FCancelDate")
BASE_DATA_STATE_KEYS = ("FApproveDate", "FForbidDate")
# What change capture cannot see, said where the entity is described [assumed: no standard form
# has a submit date, and un-audit clears FApproveDate rather than stamping a date of its own].
NO_SUBMIT_DATE = ("; change time = latest of FModifyDate and its state dates; Submit and UnAudit set no date, "
                  "so those two are seen only by the next save or by reconcile")


def _ref(key: str, ref_key: str = "FNumber") -> Field:
    return Field(key, ref_key)


CUSTOMER = Shape(
    "customer",
    "BD_Customer",
    "FCUSTID",
    "FNumber",
    "FDocumentStatus",
    (
        Field("FNumber"),
        Field("FName"),
        Field("FShortName"),
        _ref("FCreateOrgId"),
        _ref("FUseOrgId"),
        _ref("FTRADINGCURRID"),
        Field("FTEL"),
        Field("FTAXREGISTERCODE"),
        Field("FADDRESS"),
        _ref("FGroup"),
        _ref("FSELLER"),
        Field("FDocumentStatus", kind="status"),
        Field("FForbidStatus", kind="status"),
        Field("FModifyDate", kind="datetime"),
    ),
    org_fields=("FCreateOrgId", "FUseOrgId"),
    state_keys=BASE_DATA_STATE_KEYS,
    description="客户 BD_Customer" + NO_SUBMIT_DATE,
)

SALES_ORDER = Shape(
    "sales_order",
    "SAL_SaleOrder",
    "FID",
    "FBillNo",
    "FDocumentStatus",
    (
        Field("FBillNo"),
        _ref("FBillTypeID", "FNUMBER"),
        Field("FDate", kind="date"),
        _ref("FSaleOrgId"),
        _ref("FCustId"),
        _ref("FSalerId"),
        Field("FNote"),
        Field("FDocumentStatus", kind="status"),
        Field("FModifyDate", kind="datetime"),
    ),
    subheads=(SubHead("FSaleOrderFinance", (_ref("FSettleCurrId"),)),),
    entry=Entry(
        "FSaleOrderEntry",
        "FEntryID",
        (
            _ref("FMaterialId"),
            _ref("FUnitID"),
            Field("FQty", kind="number"),
            Field("FTaxPrice", kind="number"),
            Field("FEntryTaxRate", kind="number"),
            Field("FAllAmount", kind="number"),
            Field("FDeliveryDate", kind="date"),
            Field("FStockOutQty", kind="number"),
        ),
        match_key="FMaterialId",
    ),
    org_fields=("FSaleOrgId",),
    state_keys=BILL_STATE_KEYS,
    description="销售订单 SAL_SaleOrder with entries FSaleOrderEntry" + NO_SUBMIT_DATE,
)

RECEIPT = Shape(
    "receipt",
    "AR_RECEIVEBILL",
    "FID",
    "FBillNo",
    "FDOCUMENTSTATUS",
    (
        Field("FBillNo"),
        _ref("FBillTypeID", "FNUMBER"),
        Field("FDATE", kind="date"),
        Field("FCONTACTUNITTYPE"),
        _ref("FCONTACTUNIT"),
        Field("FPAYUNITTYPE"),
        _ref("FPAYUNIT"),
        _ref("FCURRENCYID"),
        _ref("FPAYORGID"),
        _ref("FSETTLECUR", "FNUMBER"),
        Field("FDOCUMENTSTATUS", kind="status"),
        Field("FModifyDate", kind="datetime"),
    ),
    entry=Entry(
        "FRECEIVEBILLENTRY",
        "FEntryID",
        (
            _ref("FSETTLETYPEID"),
            _ref("FPURPOSEID"),
            Field("FRECTOTALAMOUNTFOR", kind="number"),
            Field("FSALEORDERNO"),
        ),
    ),
    org_fields=("FPAYORGID",),
    state_keys=BILL_STATE_KEYS,
    description="收款单 AR_RECEIVEBILL with entries FRECEIVEBILLENTRY" + NO_SUBMIT_DATE,
)

MATERIAL = Shape(
    "material",
    "BD_MATERIAL",
    "FMATERIALID",
    "FNumber",
    "FDocumentStatus",
    (
        Field("FNumber"),
        Field("FName"),
        Field("FSpecification"),
        _ref("FCreateOrgId"),
        _ref("FUseOrgId"),
        _ref("FBaseUnitId"),
        Field("FModifyDate", kind="datetime"),
    ),
    org_fields=("FCreateOrgId", "FUseOrgId"),
    state_keys=BASE_DATA_STATE_KEYS,
    description="物料 BD_MATERIAL" + NO_SUBMIT_DATE,
)

# 销售出库单 (outbound delivery): each audited one ships goods of a sales order. Its lines name the
# order by FSoorDerno (销售订单号, the vendor's spelling) and the material shipped.
SHIPMENT = Shape(
    "shipment",
    "SAL_OUTSTOCK",
    "FID",
    "FBillNo",
    "FDocumentStatus",
    (
        Field("FBillNo"),
        _ref("FBillTypeID", "FNUMBER"),
        Field("FDate", kind="date"),
        _ref("FSaleOrgId"),
        _ref("FStockOrgId"),
        _ref("FCustomerID"),
        Field("FDocumentStatus", kind="status"),
        Field("FModifyDate", kind="datetime"),
    ),
    entry=Entry(
        "FEntity",
        "FEntryID",
        (
            _ref("FMaterialID"),
            _ref("FUnitID"),
            Field("FRealQty", kind="number"),
            Field("FSoorDerno"),
        ),
        match_key="FMaterialID",
    ),
    org_fields=("FSaleOrgId", "FStockOrgId"),
    state_keys=BILL_STATE_KEYS,
    description="销售出库单 SAL_OUTSTOCK with entries FEntity" + NO_SUBMIT_DATE,
)

SHAPES: dict[str, Shape] = {s.entity: s for s in (CUSTOMER, SALES_ORDER, RECEIPT, MATERIAL, SHIPMENT)}
