"""Deterministic, realistic-looking Chinese business data for seeding sandboxes.

Everything comes from one `random.Random(seed)`, so the same seed always yields the same data.
Unified social credit codes (统一社会信用代码) carry a valid GB 32100-2015 check character and a
valid GB 11714 organisation-code check character in positions 9-17.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# GB 32100-2015: 31 characters (no I, O, S, V, Z); weight of position i is 3**i mod 31.
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714-1997


def uscc_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code."""
    if len(first17) != 17:
        raise ValueError("need the first 17 characters")
    total = sum(USCC_CHARSET.index(c) * w for c, w in zip(first17.upper(), USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The check character of a 9-character organisation code (GB 11714)."""
    values = [int(c, 36) for c in first8.upper()]
    c9 = 11 - sum(v * w for v, w in zip(values, _ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(c9, str(c9))


def is_valid_uscc(code: str) -> bool:
    """Format and GB 32100-2015 check character of a unified social credit code."""
    if not isinstance(code, str) or len(code) != 18:
        return False
    code = code.upper()
    if any(c not in USCC_CHARSET for c in code):
        return False
    return uscc_check_char(code[:17]) == code[17]


# (province, city, district, administrative division code)
DISTRICTS: tuple[tuple[str, str, str, str], ...] = (
    ("上海市", "上海市", "浦东新区", "310115"),
    ("上海市", "上海市", "闵行区", "310112"),
    ("上海市", "上海市", "徐汇区", "310104"),
    ("上海市", "上海市", "嘉定区", "310114"),
    ("北京市", "北京市", "海淀区", "110108"),
    ("北京市", "北京市", "朝阳区", "110105"),
    ("天津市", "天津市", "滨海新区", "120116"),
    ("广东省", "深圳市", "南山区", "440305"),
    ("广东省", "深圳市", "福田区", "440304"),
    ("广东省", "广州市", "天河区", "440106"),
    ("江苏省", "苏州市", "吴中区", "320506"),
    ("江苏省", "南京市", "江宁区", "320115"),
    ("浙江省", "杭州市", "西湖区", "330106"),
    ("浙江省", "杭州市", "滨江区", "330108"),
    ("浙江省", "宁波市", "鄞州区", "330212"),
    ("四川省", "成都市", "武侯区", "510107"),
    ("湖北省", "武汉市", "洪山区", "420111"),
    ("山东省", "青岛市", "黄岛区", "370211"),
)
_CITY_SHORT = {
    "上海市": "上海",
    "北京市": "北京",
    "天津市": "天津",
    "深圳市": "深圳",
    "广州市": "广州",
    "苏州市": "苏州",
    "南京市": "南京",
    "杭州市": "杭州",
    "宁波市": "宁波",
    "成都市": "成都",
    "武汉市": "武汉",
    "青岛市": "青岛",
}
_ROADS = (
    "张江路",
    "科苑路",
    "中山路",
    "人民路",
    "建设路",
    "解放路",
    "长江路",
    "学院路",
    "创新大道",
    "金桥路",
    "文一西路",
    "滨江大道",
    "天府大道",
    "光谷大道",
    "深南大道",
    "虹桥路",
)
# 字号 with a romanisation for e-mail domains.
_BRANDS = (
    ("星辰", "xingchen"),
    ("华信", "huaxin"),
    ("恒通", "hengtong"),
    ("瑞丰", "ruifeng"),
    ("博远", "boyuan"),
    ("天合", "tianhe"),
    ("金桥", "jinqiao"),
    ("宏达", "hongda"),
    ("鑫源", "xinyuan"),
    ("锦程", "jincheng"),
    ("朗润", "langrun"),
    ("汇智", "huizhi"),
    ("启明", "qiming"),
    ("海纳", "haina"),
    ("永安", "yongan"),
    ("德润", "derun"),
    ("凯达", "kaida"),
    ("联创", "lianchuang"),
    ("新锐", "xinrui"),
    ("卓越", "zhuoyue"),
    ("嘉禾", "jiahe"),
    ("远航", "yuanhang"),
    ("盛泰", "shengtai"),
    ("万象", "wanxiang"),
)
_INDUSTRIES = (
    ("精密机械", "jx"),
    ("电子科技", "tech"),
    ("信息技术", "it"),
    ("贸易", "trade"),
    ("新材料", "nm"),
    ("自动化设备", "auto"),
    ("医疗器械", "med"),
    ("食品", "food"),
    ("物流", "log"),
    ("建材", "bm"),
    ("环保科技", "eco"),
    ("化工", "chem"),
)
_SUFFIXES = ("有限公司", "有限公司", "有限公司", "股份有限公司")
_SURNAMES = (
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("赵", "zhao"),
    ("黄", "huang"),
    ("周", "zhou"),
    ("吴", "wu"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("胡", "hu"),
    ("朱", "zhu"),
    ("高", "gao"),
    ("林", "lin"),
)
_GIVEN = (
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("洋", "yang"),
    ("艳", "yan"),
    ("勇", "yong"),
    ("军", "jun"),
    ("杰", "jie"),
    ("婷", "ting"),
    ("晨", "chen"),
    ("浩然", "haoran"),
    ("思远", "siyuan"),
    ("雨桐", "yutong"),
    ("子涵", "zihan"),
    ("建华", "jianhua"),
    ("丽娟", "lijuan"),
)
_MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "157",
    "158",
    "159",
    "177",
    "180",
    "181",
    "186",
    "187",
    "188",
    "189",
    "199",
)

_PART_QTYS = (1, 2, 3, 5, 10, 20, 50, 100)
# Random picks tried for an unused base name before numbering one (the old code tried 1000 and
# then gave up, which at ~5,000 companies meant a thousand draws per call and then an error).
_NAME_TRIES = 20
# Credit code bodies: 8 digits; the step is coprime to 10**8, so serial -> body is a bijection.
_BODY_SPACE = 10**8
_BODY_STEP = 38_219_471

# Salespeople known to the ERP (staff codes S001..S005).
STAFF: tuple[tuple[str, str], ...] = (
    ("S001", "王建国"),
    ("S002", "李秀英"),
    ("S003", "张伟"),
    ("S004", "刘洋"),
    ("S005", "陈静"),
)


@dataclass(frozen=True)
class Product:
    sku: str  # CRM product code
    name: str
    unit: str  # 个 / 台 / 箱
    price: Decimal  # tax-included unit price


PRODUCTS: tuple[Product, ...] = tuple(
    Product(f"P-{1001 + i}", name, unit, Decimal(price))
    for i, (name, unit, price) in enumerate(
        (
            ("深沟球轴承 6205", "个", "18.50"),
            ("直线导轨 HGR20", "个", "265.00"),
            ("伺服电机 750W", "台", "1980.00"),
            ("减速机 PF60", "台", "1350.00"),
            ("PLC 控制器 S7-1200", "台", "3200.00"),
            ("触摸屏 7寸", "台", "1480.00"),
            ("光电传感器 E3Z", "个", "96.00"),
            ("接近开关 M12", "个", "45.00"),
            ("气缸 SC50x100", "个", "210.00"),
            ("电磁阀 4V210", "个", "88.00"),
            ("同步带轮 5M", "个", "36.00"),
            ("联轴器 D25", "个", "52.00"),
            ("变频器 2.2kW", "台", "1650.00"),
            ("工业相机 500万像素", "台", "4200.00"),
            ("不锈钢螺栓 M8 (100只)", "箱", "75.00"),
            ("润滑脂 2kg", "箱", "120.00"),
            ("电缆 RVV 3x1.5 (100m)", "箱", "380.00"),
            ("开关电源 24V 10A", "个", "158.00"),
            ("继电器 MY2N", "个", "22.00"),
            ("铝型材 4040 (6m)", "箱", "310.00"),
        )
    )
)
# How many distinct base names (city + brand + industry + suffix) exist.
_BASE_NAMES = (
    len({_CITY_SHORT.get(d[1], d[1][:2]) for d in DISTRICTS}) * len(_BRANDS) * len(_INDUSTRIES) * len(set(_SUFFIXES))
)
PRODUCT_BY_SKU = {p.sku: p for p in PRODUCTS}


def money(value: Decimal | float | int) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Company:
    name: str
    short_name: str
    credit_code: str
    phone: str
    contact_name: str
    email: str
    address: dict[str, str]  # province, city, district, detail
    division_code: str


class Fake:
    """Seeded generator. Names are unique within one generator."""

    def __init__(self, seed: int = 2026) -> None:
        self.rng = random.Random(seed)
        # Only the ~7,000 base names and one counter per base are kept, not every name handed out,
        # so a million companies cost a few hundred kB here.
        self._used_bases: set[str] = set()
        self._base_repeats: dict[str, int] = {}
        self._per_division: dict[str, int] = {}
        self._code_offset = (seed * 2654435761) % _BODY_SPACE

    def mobile(self) -> str:
        # One draw for the 8 digits, not eight: company() is called a million times by the benches.
        return f"{self.rng.choice(_MOBILE_PREFIXES)}{self.rng.randrange(10**8):08d}"

    def person(self) -> tuple[str, str]:
        """(Chinese name, romanised 'given.surname' for e-mail)."""
        surname, s_py = self.rng.choice(_SURNAMES)
        given, g_py = self.rng.choice(_GIVEN)
        return surname + given, f"{g_py}.{s_py}"

    def district(self) -> tuple[str, str, str, str]:
        return self.rng.choice(DISTRICTS)

    def address(self, district: tuple[str, str, str, str] | None = None) -> dict[str, str]:
        province, city, dist, _ = district or self.district()
        detail = f"{self.rng.choice(_ROADS)}{self.rng.randrange(1, 2000)}号"
        if self.rng.random() < 0.5:
            detail += f"{self.rng.randrange(1, 30)}幢{self.rng.randrange(101, 2300)}室"
        return {"province": province, "city": city, "district": dist, "detail": detail}

    def credit_code(self, division_code: str | None = None, serial: int | None = None) -> str:
        """A unified social credit code of an enterprise (登记管理部门 9, 类别 1) with valid checks.

        With `serial` (the n-th code of that division) the 8-digit body is a bijection of it, so
        codes of one generator never repeat (random bodies collide by the birthday bound at ~10^4).
        """
        division = division_code or self.district()[3]
        if serial is None:
            body8 = f"{self.rng.randrange(_BODY_SPACE):08d}"
        else:
            body8 = f"{(serial * _BODY_STEP + self._code_offset) % _BODY_SPACE:08d}"
        first17 = "91" + division + body8 + org_code_check_char(body8)
        return first17 + uscc_check_char(first17)

    def staff_code(self) -> str:
        return self.rng.choice(STAFF)[0]

    def company(self) -> Company:
        district = self.district()
        city_short = _CITY_SHORT.get(district[1], district[1][:2])
        # Once nine in ten base names are taken, retries mostly miss: number right away instead.
        tries = _NAME_TRIES if len(self._used_bases) < _BASE_NAMES * 9 // 10 else 1
        for _ in range(tries):
            brand, brand_py = self.rng.choice(_BRANDS)
            industry, industry_py = self.rng.choice(_INDUSTRIES)
            name = f"{city_short}{brand}{industry}{self.rng.choice(_SUFFIXES)}"
            if name not in self._used_bases:
                self._used_bases.add(name)
                short_name = f"{brand}{industry[:2]}"
                break
        else:
            # Base names are exhausted (or nearly): number the 字号. City and brand are two characters
            # each and no base name holds a digit, so (base, n) gives a name no other call gives.
            n = self._base_repeats.get(name, 1) + 1
            self._base_repeats[name] = n
            name = f"{name[:4]}{n}{name[4:]}"
            short_name = f"{brand}{n}{industry[:2]}"
        serial = self._per_division.get(district[3], 0)
        self._per_division[district[3]] = serial + 1
        contact, contact_py = self.person()
        return Company(
            name=name,
            short_name=short_name,
            credit_code=self.credit_code(district[3], serial),
            phone=self.mobile(),
            contact_name=contact,
            email=f"{contact_py}@{brand_py}-{industry_py}.com.cn",
            address=self.address(district),
            division_code=district[3],
        )

    def order_lines(self, count: int) -> list[dict[str, Any]]:
        """`count` lines with distinct skus from P-1001..P-1020 (tax rate 13%)."""
        products = self.rng.sample(PRODUCTS, count)
        lines = []
        for product in products:
            # Machines (台) come by ones and twos; parts by the handful or the box.
            qty = self.rng.randrange(1, 6) if product.unit == "台" else self.rng.choice(_PART_QTYS)
            lines.append(
                {
                    "sku": product.sku,
                    "product_name": product.name,
                    "qty": qty,
                    "unit": product.unit,
                    "price": float(product.price),
                    "tax_rate": 13,
                    "amount": float(money(product.price * qty)),
                    "shipped_qty": 0,
                }
            )
        return lines
