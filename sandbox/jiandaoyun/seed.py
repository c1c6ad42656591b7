"""Deterministic demo data for the CRM app: customers, opportunities, sales orders with lines.

A few records are wrong on purpose, so the demo shows them landing in dead letters downstream:
a customer whose unified social credit code has a bad check character, an order with a sku the
ERP does not know, and an order for a customer that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from erphub.sandbox.fakedata import USCC_CHARSET, Fake, money
from erphub.sandbox.jiandaoyun.store import JiandaoyunState

CUSTOMERS = 60
OPPORTUNITIES = 15
ORDERS = 40

BAD_CREDIT_CUSTOMER = "CUS-000013"
UNKNOWN_SKU = "P-9999"
UNKNOWN_SKU_ORDER = "SO-2026-00007"
MISSING_CUSTOMER = "CUS-009999"
MISSING_CUSTOMER_ORDER = "SO-2026-00023"
STAGES = ("初步接洽", "需求确认", "报价", "赢单", "输单")
GROUPS = ("KA", "SMB", "SMB", "GOV")
REMARKS = ("", "", "请尽快发货", "月底前交付", "分批发货", "含安装调试", "")


@dataclass
class SeedSummary:
    customers: list[str] = field(default_factory=list)
    opportunities: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    bad_customers: list[str] = field(default_factory=list)
    bad_orders: list[str] = field(default_factory=list)


def _break_check_char(code: str) -> str:
    wrong = USCC_CHARSET[(USCC_CHARSET.index(code[-1]) + 7) % len(USCC_CHARSET)]
    return code[:-1] + wrong


def seed(state: JiandaoyunState, *, seed: int = 2026, now: datetime | None = None) -> SeedSummary:
    fake = Fake(seed)
    now = now or datetime.now(UTC)
    base = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=30)
    summary = SeedSummary()
    customers: list[dict[str, object]] = []

    for i in range(1, CUSTOMERS + 1):
        company = fake.company()
        code = f"CUS-{i:06d}"
        credit = company.credit_code
        if code == BAD_CREDIT_CUSTOMER:
            credit = _break_check_char(credit)
            summary.bad_customers.append(code)
        row = {
            "customer_code": code,
            "customer_name": company.name,
            "short_name": company.short_name,
            "credit_code": credit,
            "phone": company.phone,
            "contact_name": company.contact_name,
            "email": company.email,
            "address": company.address,
            "customer_group": fake.rng.choice(GROUPS),
            "salesperson": fake.staff_code(),
            "currency": "USD" if i % 10 == 0 else "CNY",
            "status": "潜在" if i % 7 == 0 else "正式",
            "erp_customer_no": "",
            "account_status": "none",
            "outstanding_balance": 0,
        }
        customers.append(row)
        state.insert_plain("customer_form", row, at=base + timedelta(minutes=10 * i))
        summary.customers.append(code)

    formal = [c for c in customers if c["status"] == "正式" and c["customer_code"] != BAD_CREDIT_CUSTOMER]
    for n in range(1, OPPORTUNITIES + 1):
        customer = fake.rng.choice(customers)
        opp_no = f"OPP-2026-{n:04d}"
        state.insert_plain(
            "opportunity_form",
            {
                "opp_no": opp_no,
                "customer_code": customer["customer_code"],
                "customer_name": customer["customer_name"],
                "credit_code": customer["credit_code"],
                "phone": customer["phone"],
                "address": customer["address"],
                "stage": fake.rng.choice(STAGES),
                "amount": float(money(Decimal(fake.rng.randrange(20, 900)) * 1000)),
                "currency": customer["currency"],
                "salesperson": customer["salesperson"],
                "erp_customer_no": "",
            },
            at=base + timedelta(days=1, minutes=20 * n),
        )
        summary.opportunities.append(opp_no)

    for n in range(1, ORDERS + 1):
        order_no = f"SO-2026-{n:05d}"
        customer = fake.rng.choice(formal)
        created = base + timedelta(days=2, minutes=15 * n)
        lines = fake.order_lines(fake.rng.randrange(1, 5))
        customer_code = str(customer["customer_code"])
        if order_no == UNKNOWN_SKU_ORDER:
            lines[-1] = {**lines[-1], "sku": UNKNOWN_SKU, "product_name": "停产型号 X-1"}
            summary.bad_orders.append(order_no)
        if order_no == MISSING_CUSTOMER_ORDER:
            customer_code = MISSING_CUSTOMER
            summary.bad_orders.append(order_no)
        order_date = (created - timedelta(hours=fake.rng.randrange(1, 48))).replace(minute=0, second=0)
        state.insert_plain(
            "sales_order_form",
            {
                "order_no": order_no,
                "customer_code": customer_code,
                "order_date": order_date.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "currency": customer["currency"],
                "salesperson": customer["salesperson"],
                "remark": fake.rng.choice(REMARKS),
                "status": "待发货",
                "shipped_date": None,
                "lines": lines,
            },
            at=created,
        )
        summary.orders.append(order_no)
    return summary
