"""Form metadata of the Kingdee sandbox: which fields a form has, their types, references and rules.

Field keys follow SCHEMAS.md (and the vendor's inconsistent casing: `FDOCUMENTSTATUS` on
AR_RECEIVEBILL, `FDocumentStatus` elsewhere); lookups are case-insensitive as Kingdee's are.
The reference forms (organisations, currencies, ...) carry only pk, FNumber and FName.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Field kinds: "text", "number", "int", "date", "datetime", "ref", "status".


@dataclass(frozen=True, slots=True)
class FieldDef:
    key: str
    kind: str = "text"
    caption: str = ""
    ref: str | None = None  # referenced FormId; "@FIELD" = FormId held in that field
    required: bool = False
    readonly: bool = False  # maintained by the server; ignored in a Save Model
    custom: bool = False  # a customer's own field (key F_...), added per account set


@dataclass(frozen=True, slots=True)
class EntryDef:
    key: str  # e.g. FSaleOrderEntry
    pk: str  # FEntryID
    caption: str
    fields: tuple[FieldDef, ...]


@dataclass(frozen=True, slots=True)
class SubHeadDef:
    key: str  # e.g. FSaleOrderFinance (a 1:1 sub-entity, an object in the Model)
    fields: tuple[FieldDef, ...]


@dataclass(frozen=True, slots=True)
class FormDef:
    form_id: str
    caption: str
    pk: str
    number_key: str
    fields: tuple[FieldDef, ...]
    subheads: tuple[SubHeadDef, ...] = ()
    entries: tuple[EntryDef, ...] = ()
    status_key: str | None = None
    modify_key: str | None = "FModifyDate"
    number_prefix: str = ""
    is_bill: bool = False  # bills are "单据"; base data are "基础资料" (affects messages only)
    _index: dict[str, tuple[str, FieldDef]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, tuple[str, FieldDef]] = {}
        index[self.pk.lower()] = ("header", FieldDef(self.pk, "int", "内码", readonly=True))
        for f in self.fields:
            index[f.key.lower()] = ("header", f)
        for sub in self.subheads:
            for f in sub.fields:
                index[f.key.lower()] = (f"sub:{sub.key}", f)
        for entry in self.entries:
            pk_def = FieldDef(entry.pk, "int", "分录内码", readonly=True)
            index[f"{entry.key}_{entry.pk}".lower()] = (f"entry:{entry.key}", pk_def)
            for f in entry.fields:
                index.setdefault(f.key.lower(), (f"entry:{entry.key}", f))
        object.__setattr__(self, "_index", index)

    def locate(self, key: str) -> tuple[str, FieldDef] | None:
        """Where a field key lives ("header", "sub:KEY", "entry:KEY") and its definition."""
        return self._index.get(key.lower())

    def entry(self, key: str) -> EntryDef | None:
        return next((e for e in self.entries if e.key.lower() == key.lower()), None)

    def subhead(self, key: str) -> SubHeadDef | None:
        return next((s for s in self.subheads if s.key.lower() == key.lower()), None)

    def with_fields(self, extra: tuple[FieldDef, ...]) -> FormDef:
        """This form with header fields added (a customer's custom `F_` fields)."""
        return FormDef(self.form_id, self.caption, self.pk, self.number_key, self.fields + extra, self.subheads,
                       self.entries, self.status_key, self.modify_key, self.number_prefix, self.is_bill)


def _ref(key: str, form: str, caption: str, required: bool = False) -> FieldDef:
    return FieldDef(key, "ref", caption, ref=form, required=required)


def _status(key: str) -> FieldDef:
    return FieldDef(key, "status", "单据状态", readonly=True)


def _modify() -> FieldDef:
    return FieldDef("FModifyDate", "datetime", "修改日期", readonly=True)


def _create() -> FieldDef:
    return FieldDef("FCreateDate", "datetime", "创建日期", readonly=True)


# State changes stamp their own dates and leave FModifyDate alone (vendor-gaps.md): Audit sets
# FApproveDate (UnAudit clears it), Cancel (作废, bills) FCancelDate, Forbid (禁用, base data) FForbidDate.
def _bill_state() -> tuple[FieldDef, ...]:
    return (FieldDef("FApproveDate", "datetime", "审核日期", readonly=True),
            FieldDef("FCancelStatus", "status", "作废状态", readonly=True),
            FieldDef("FCancelDate", "datetime", "作废日期", readonly=True))


def _base_state() -> tuple[FieldDef, ...]:
    return (FieldDef("FApproveDate", "datetime", "审核日期", readonly=True),
            FieldDef("FForbidDate", "datetime", "禁用日期", readonly=True))


def _reference_form(form_id: str, caption: str, pk: str) -> FormDef:
    return FormDef(
        form_id,
        caption,
        pk,
        "FNumber",
        (
            FieldDef("FNumber", "text", "编码"),
            FieldDef("FName", "text", "名称", required=True),
            _status("FDocumentStatus"),
            _modify(),
        ),
        status_key="FDocumentStatus",
    )


ORG = "ORG_Organizations"
CURRENCY = "BD_Currency"
BILL_TYPE = "BOS_BillType"
UNIT = "BD_UNIT"
SALER = "BD_Saler"
CUSTOMER_GROUP = "BD_CustomerGroup"
SETTLE_TYPE = "BD_SETTLETYPE"
PURPOSE = "CN_RECPAYPURPOSE"

CUSTOMER = FormDef(
    "BD_Customer",
    "客户",
    "FCUSTID",
    "FNumber",
    (
        FieldDef("FNumber", "text", "编码"),
        FieldDef("FName", "text", "客户名称", required=True),
        FieldDef("FShortName", "text", "简称"),
        _ref("FCreateOrgId", ORG, "创建组织", required=True),
        _ref("FUseOrgId", ORG, "使用组织"),
        _ref("FTRADINGCURRID", CURRENCY, "结算币别", required=True),
        FieldDef("FTEL", "text", "联系电话"),
        FieldDef("FTAXREGISTERCODE", "text", "纳税登记号"),
        FieldDef("FADDRESS", "text", "通讯地址"),
        _ref("FGroup", CUSTOMER_GROUP, "客户分组"),
        _ref("FSELLER", SALER, "销售员"),
        _status("FDocumentStatus"),
        FieldDef("FForbidStatus", "status", "禁用状态", readonly=True),
        *_base_state(),
        _create(),
        _modify(),
    ),
    status_key="FDocumentStatus",
    number_prefix="CUST",
)

MATERIAL = FormDef(
    "BD_MATERIAL",
    "物料",
    "FMATERIALID",
    "FNumber",
    (
        FieldDef("FNumber", "text", "编码"),
        FieldDef("FName", "text", "名称", required=True),
        FieldDef("FSpecification", "text", "规格型号"),
        _ref("FCreateOrgId", ORG, "创建组织", required=True),
        _ref("FUseOrgId", ORG, "使用组织"),
        _ref("FBaseUnitId", UNIT, "基本单位"),
        _status("FDocumentStatus"),
        FieldDef("FForbidStatus", "status", "禁用状态", readonly=True),
        *_base_state(),
        _create(),
        _modify(),
    ),
    status_key="FDocumentStatus",
    number_prefix="MAT",
)

SALE_ORDER = FormDef(
    "SAL_SaleOrder",
    "销售订单",
    "FID",
    "FBillNo",
    (
        FieldDef("FBillNo", "text", "单据编号"),
        _ref("FBillTypeID", BILL_TYPE, "单据类型", required=True),
        FieldDef("FDate", "date", "日期", required=True),
        _ref("FSaleOrgId", ORG, "销售组织", required=True),
        _ref("FCustId", "BD_Customer", "客户", required=True),
        _ref("FSalerId", SALER, "销售员", required=True),
        FieldDef("FNote", "text", "备注"),
        _status("FDocumentStatus"),
        *_bill_state(),
        _create(),
        _modify(),
    ),
    subheads=(
        SubHeadDef("FSaleOrderFinance", (_ref("FSettleCurrId", CURRENCY, "结算币别", required=True),)),
    ),
    entries=(
        EntryDef(
            "FSaleOrderEntry",
            "FEntryID",
            "订单明细",
            (
                _ref("FMaterialId", "BD_MATERIAL", "物料编码", required=True),
                _ref("FUnitID", UNIT, "销售单位", required=True),
                FieldDef("FQty", "number", "销售数量", required=True),
                FieldDef("FTaxPrice", "number", "含税单价"),
                FieldDef("FEntryTaxRate", "number", "税率%"),
                FieldDef("FAllAmount", "number", "价税合计"),
                FieldDef("FDeliveryDate", "date", "要货日期"),
                FieldDef("FStockOutQty", "number", "累计出库数量"),
            ),
        ),
    ),
    status_key="FDocumentStatus",
    number_prefix="XSDD",
    is_bill=True,
)

RECEIPT = FormDef(
    "AR_RECEIVEBILL",
    "收款单",
    "FID",
    "FBillNo",
    (
        FieldDef("FBillNo", "text", "单据编号"),
        _ref("FBillTypeID", BILL_TYPE, "单据类型", required=True),
        FieldDef("FDATE", "date", "业务日期", required=True),
        FieldDef("FCONTACTUNITTYPE", "text", "往来单位类型", required=True),
        _ref("FCONTACTUNIT", "@FCONTACTUNITTYPE", "往来单位", required=True),
        FieldDef("FPAYUNITTYPE", "text", "付款单位类型", required=True),
        _ref("FPAYUNIT", "@FPAYUNITTYPE", "付款单位", required=True),
        _ref("FCURRENCYID", CURRENCY, "币别", required=True),
        _ref("FPAYORGID", ORG, "收款组织", required=True),
        _ref("FSETTLECUR", CURRENCY, "结算币别", required=True),
        _status("FDOCUMENTSTATUS"),
        *_bill_state(),
        _create(),
        _modify(),
    ),
    entries=(
        EntryDef(
            "FRECEIVEBILLENTRY",
            "FEntryID",
            "收款明细",
            (
                _ref("FSETTLETYPEID", SETTLE_TYPE, "结算方式", required=True),
                _ref("FPURPOSEID", PURPOSE, "收款用途", required=True),
                FieldDef("FRECTOTALAMOUNTFOR", "number", "应收金额", required=True),
                FieldDef("FSALEORDERNO", "text", "销售订单号"),
            ),
        ),
    ),
    status_key="FDOCUMENTSTATUS",
    number_prefix="SKD",
    is_bill=True,
)

OUTSTOCK = FormDef(
    "SAL_OUTSTOCK",
    "销售出库单",
    "FID",
    "FBillNo",
    (
        FieldDef("FBillNo", "text", "单据编号"),
        _ref("FBillTypeID", BILL_TYPE, "单据类型", required=True),
        FieldDef("FDate", "date", "日期", required=True),
        _ref("FSaleOrgId", ORG, "销售组织", required=True),
        _ref("FStockOrgId", ORG, "发货组织", required=True),
        _ref("FCustomerID", "BD_Customer", "客户", required=True),
        _status("FDocumentStatus"),
        *_bill_state(),
        _create(),
        _modify(),
    ),
    entries=(
        EntryDef(
            "FEntity",
            "FEntryID",
            "明细信息",
            (
                _ref("FMaterialID", "BD_MATERIAL", "物料编码", required=True),
                _ref("FUnitID", UNIT, "库存单位", required=True),
                FieldDef("FRealQty", "number", "实发数量", required=True),
                FieldDef("FSoorDerno", "text", "订单单号"),
            ),
        ),
    ),
    status_key="FDocumentStatus",
    number_prefix="XSCKD",
    is_bill=True,
)

REFERENCE_FORMS = (
    _reference_form(ORG, "组织机构", "FORGID"),
    _reference_form(CURRENCY, "币别", "FCURRENCYID"),
    _reference_form(BILL_TYPE, "单据类型", "FBILLTYPEID"),
    _reference_form(UNIT, "计量单位", "FUNITID"),
    _reference_form(SALER, "销售员", "FID"),
    _reference_form(CUSTOMER_GROUP, "客户分组", "FID"),
    _reference_form(SETTLE_TYPE, "结算方式", "FID"),
    _reference_form(PURPOSE, "收付款用途", "FID"),
)

FORMS: dict[str, FormDef] = {
    f.form_id: f for f in (CUSTOMER, MATERIAL, SALE_ORDER, RECEIPT, OUTSTOCK, *REFERENCE_FORMS)
}


def find_form(form_id: str) -> FormDef | None:
    """FormIds are matched case-insensitively (K/3 Cloud's own casing is inconsistent)."""
    if form_id in FORMS:
        return FORMS[form_id]
    lowered = str(form_id).lower()
    return next((f for f in FORMS.values() if f.form_id.lower() == lowered), None)
