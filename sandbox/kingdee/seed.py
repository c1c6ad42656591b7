"""Seeded reference and business data of the Kingdee sandbox (SCHEMAS.md's list, plus realistic extras)."""

from __future__ import annotations

from datetime import datetime, timedelta

from erphub.sandbox.fakedata import PRODUCTS, STAFF, Fake, money
from erphub.sandbox.kingdee.store import KingdeeStore

UNIT_BY_CRM = {"个": "Pcs", "台": "Set", "箱": "Box"}

REFERENCE_DATA: dict[str, list[tuple[str, str]]] = {
    "ORG_Organizations": [("100", "总公司"), ("200", "华东分公司")],
    "BD_Currency": [("PRE001", "人民币"), ("PRE007", "美元")],
    "BOS_BillType": [("XSDD01_SYS", "标准销售订单"), ("SKDLX01_SYS", "销售业务收款单"),
                     ("XSCKD01_SYS", "标准销售出库单")],
    "BD_UNIT": [("Pcs", "个"), ("Set", "台"), ("Box", "箱")],
    "BD_Saler": list(STAFF),
    "BD_CustomerGroup": [("KA", "重点客户"), ("SMB", "中小企业客户"), ("GOV", "政府及事业单位")],
    "BD_SETTLETYPE": [("JSFS01_SYS", "现金"), ("JSFS04_SYS", "电汇"), ("JSFS05_SYS", "银行承兑汇票")],
    "CN_RECPAYPURPOSE": [("SFKYT01_SYS", "销售收款"), ("SFKYT02_SYS", "预收款")],
}


def material_number(index: int) -> str:
    """Material codes 1.01.001..1.01.020 (CRM sku P-1001..P-1020 map to these)."""
    return f"1.01.{index:03d}"


def seed(
    store: KingdeeStore,
    *,
    customers: int = 8,
    receipts: int = 6,
    seed_value: int = 2026,
    now: datetime | None = None,
) -> None:
    """Reference data, materials, `customers` audited customers CUS-000001.. and `receipts` audited
    receipts (AR_RECEIVEBILL) against the first of them, stamped over the past days."""
    now = now or store.clock()
    base = now - timedelta(days=3)
    for form_id, rows in REFERENCE_DATA.items():
        for number, name in rows:
            store.insert(form_id, {"FNumber": number, "FName": name}, modify_date=base, status="C")
    for i, product in enumerate(PRODUCTS, start=1):
        name, _, spec = product.name.partition(" ")
        store.insert(
            "BD_MATERIAL",
            {
                "FNumber": material_number(i),
                "FName": name,
                "FSpecification": spec,
                "FCreateOrgId": {"FNumber": "100"},
                "FUseOrgId": {"FNumber": "100"},
                "FBaseUnitId": {"FNumber": UNIT_BY_CRM[product.unit]},
            },
            modify_date=base + timedelta(minutes=i),
            status="C",
        )
    # The same generator sequence as the CRM sandbox's customers, so CUS-000001.. are the same
    # companies in both systems (as if synced before): same name, credit code, phone, group, seller.
    fake = Fake(seed_value)
    groups = ("KA", "SMB", "SMB", "GOV")
    numbers = []
    for n in range(1, customers + 1):
        company = fake.company()
        group = fake.rng.choice(groups)
        seller = fake.staff_code()
        number = f"CUS-{n:06d}"
        numbers.append(number)
        address = "".join(company.address[k] for k in ("province", "city", "district", "detail"))
        store.insert(
            "BD_Customer",
            {
                "FNumber": number,
                "FName": company.name,
                "FShortName": company.short_name,
                "FCreateOrgId": {"FNumber": "100"},
                "FUseOrgId": {"FNumber": "100"},
                "FTRADINGCURRID": {"FNumber": "PRE007" if n % 10 == 0 else "PRE001"},
                "FTEL": company.phone,
                "FTAXREGISTERCODE": company.credit_code,
                "FADDRESS": address,
                "FGroup": {"FNumber": group},
                "FSELLER": {"FNumber": seller},
            },
            modify_date=base + timedelta(hours=1, minutes=n),
            status="C",
        )
    for r in range(1, receipts + 1):
        if not numbers:
            break
        customer = numbers[(r - 1) % len(numbers)]
        lines = fake.order_lines(fake.rng.randrange(1, 3))
        amount = money(sum(line["amount"] for line in lines))
        stamp = base + timedelta(days=1, hours=r)
        store.insert(
            "AR_RECEIVEBILL",
            {
                "FBillNo": f"SKD{stamp:%Y%m%d}{r:04d}",
                "FBillTypeID": {"FNUMBER": "SKDLX01_SYS"},
                "FDATE": stamp.strftime("%Y-%m-%d"),
                "FCONTACTUNITTYPE": "BD_Customer",
                "FCONTACTUNIT": {"FNumber": customer},
                "FPAYUNITTYPE": "BD_Customer",
                "FPAYUNIT": {"FNumber": customer},
                "FCURRENCYID": {"FNumber": "PRE001"},
                "FPAYORGID": {"FNumber": "100"},
                "FSETTLECUR": {"FNUMBER": "PRE001"},
                "FRECEIVEBILLENTRY": [
                    {
                        "FSETTLETYPEID": {"FNumber": "JSFS04_SYS"},
                        "FPURPOSEID": {"FNumber": "SFKYT01_SYS"},
                        "FRECTOTALAMOUNTFOR": str(amount),
                        "FSALEORDERNO": f"SO-2026-{r:05d}",
                    }
                ],
            },
            modify_date=stamp,
            status="C",
        )
