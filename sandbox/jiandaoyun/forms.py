"""The CRM app's forms as the sandbox knows them (SCHEMAS.md): field aliases and widget types."""

from __future__ import annotations

from dataclasses import dataclass, field

APP_ID = "crm_app_0001"

# Widget types used for validation and filtering (names as in the vendor's widget/list answer).
TEXT = "text"
NUMBER = "number"
DATETIME = "datetime"
ADDRESS = "address"
SUBFORM = "subform"


@dataclass(frozen=True)
class FormDef:
    """A form: its fields by the name records use (an alias, or the widget id `_widget_...` when the
    form sets no alias), their widget types, sub-forms, and the labels people see."""

    entry_id: str
    name: str
    key_field: str
    widgets: dict[str, str]
    subforms: dict[str, dict[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # field name (or "sub.item") -> label

    def label(self, name: str) -> str:
        return self.labels.get(name, name)

    def with_fields(self, extra: dict[str, str]) -> FormDef:
        """The form with custom fields added (name -> widget type), as a customer adds them."""
        return FormDef(self.entry_id, self.name, self.key_field, {**self.widgets, **extra}, self.subforms,
                       self.labels)

    def widget_type(self, alias: str) -> str | None:
        if alias in self.widgets:
            return self.widgets[alias]
        if alias in self.subforms:
            return SUBFORM
        return None


CUSTOMER = FormDef(
    "customer_form",
    "客户",
    "customer_code",
    {
        "customer_code": TEXT,
        "customer_name": TEXT,
        "short_name": TEXT,
        "credit_code": TEXT,
        "phone": TEXT,
        "contact_name": TEXT,
        "email": TEXT,
        "address": ADDRESS,
        "customer_group": TEXT,
        "salesperson": TEXT,
        "currency": TEXT,
        "status": TEXT,
        "erp_customer_no": TEXT,
        "account_status": TEXT,
        "outstanding_balance": NUMBER,
    },
)

OPPORTUNITY = FormDef(
    "opportunity_form",
    "商机",
    "opp_no",
    {
        "opp_no": TEXT,
        "customer_code": TEXT,
        "customer_name": TEXT,
        "credit_code": TEXT,
        "phone": TEXT,
        "address": ADDRESS,
        "stage": TEXT,
        "amount": NUMBER,
        "currency": TEXT,
        "salesperson": TEXT,
        "erp_customer_no": TEXT,
    },
)

SALES_ORDER = FormDef(
    "sales_order_form",
    "销售订单",
    "order_no",
    {
        "order_no": TEXT,
        "customer_code": TEXT,
        "order_date": DATETIME,
        "currency": TEXT,
        "salesperson": TEXT,
        "remark": TEXT,
        "status": TEXT,
        "shipped_date": DATETIME,
        "shipped_qty": NUMBER,
        "erp_order_no": TEXT,
    },
    subforms={
        "lines": {
            "sku": TEXT,
            "product_name": TEXT,
            "qty": NUMBER,
            "unit": TEXT,
            "price": NUMBER,
            "tax_rate": NUMBER,
            "amount": NUMBER,
            "shipped_qty": NUMBER,
        }
    },
)

PAYMENT = FormDef(
    "payment_form",
    "回款",
    "receipt_no",
    {
        "receipt_no": TEXT,
        "customer_code": TEXT,
        "amount": NUMBER,
        "currency": TEXT,
        "paid_date": DATETIME,
        "method": TEXT,
        "order_no": TEXT,
    },
)

FORMS: dict[str, FormDef] = {f.entry_id: f for f in (CUSTOMER, OPPORTUNITY, SALES_ORDER, PAYMENT)}

# System fields every record carries, with the type used by filters.
SYSTEM_FIELDS = {
    "_id": TEXT,
    "appId": TEXT,
    "entryId": TEXT,
    "createTime": DATETIME,
    "updateTime": DATETIME,
    "creator": "user",
    "updater": "user",
}
