"""Every named transform with its edge cases: None, empty, whitespace, Chinese and full-width text,
very long strings, rounding at .5, time zones, leap days, malformed input."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from erphub.mappings.lookups import LookupTable, LookupTables
from erphub.mappings.transforms import TRANSFORMS, ArgError, Fn, TransformError

LOOKUPS = Path(__file__).resolve().parents[3] / "mappings" / "lookups"


class Ctx:
    def __init__(self, decimal_mark: str = "point") -> None:
        self.tables = LookupTables(LOOKUPS)
        self.decimal_mark = decimal_mark

    def lookup_table(self, name: str) -> LookupTable:
        return self.tables.get(name)


def make(name: str, args: Any = None) -> Fn:
    tdef = TRANSFORMS[name]
    parsed = None
    if tdef.args is not None:
        if args is not None and not isinstance(args, dict):
            args = {tdef.positional: args}
        parsed = tdef.args.model_validate(args or {})
    return tdef.build(parsed, Ctx())


def rejects(fn: Fn, value: Any, fragment: str = "", code: str = "transform") -> None:
    with pytest.raises(TransformError) as info:
        fn(value)
    assert fragment in str(info.value)
    assert info.value.code == code


LONG = "长" * 100_000


def test_every_transform_documents_itself() -> None:
    for name, tdef in TRANSFORMS.items():
        assert tdef.summary and tdef.example, name
        assert tdef.positional is None or tdef.args is not None, name


# --- text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "trim",
        "upper",
        "lower",
        "halfwidth",
        "collapse_spaces",
        "to_str",
        "to_int",
        "to_decimal",
        "to_float",
        "to_bool",
        "sum",
        "first",
        "last",
        "join",
        "split",
        "blank_to_null",
    ],
)
def test_none_passes_through(name: str) -> None:
    assert make(name)(None) is None


def test_trim() -> None:
    trim = make("trim")
    assert trim("  ACME  ") == "ACME"
    assert trim("\u3000客户\u3000") == "客户"  # ideographic space
    assert trim("") == ""
    assert trim("   ") == ""
    assert trim(12) == "12"
    assert trim(LONG + " ") == LONG
    rejects(trim, {"a": 1}, "expected text, got an object")
    rejects(trim, [1], "a list")
    rejects(trim, True, "a boolean")


def test_upper_lower_with_chinese() -> None:
    assert make("upper")("cus-001 客户") == "CUS-001 客户"
    assert make("lower")("A@B.CN") == "a@b.cn"
    assert make("upper")("") == ""


def test_halfwidth() -> None:
    hw = make("halfwidth")
    assert hw("ＡＢＣ１２３－＠") == "ABC123-@"
    assert hw("\u3000") == " "
    assert hw("北京（海淀）") == "北京(海淀)"
    assert hw("汉字かな") == "汉字かな"
    assert hw("") == ""
    assert hw("Ａ" * 50_000) == "A" * 50_000


def test_collapse_spaces_and_blank_to_null() -> None:
    assert make("collapse_spaces")("a   b\n\t c ") == "a b c"
    assert make("collapse_spaces")("请于\u3000\u3000周五") == "请于 周五"
    blank = make("blank_to_null")
    assert blank("  ") is None
    assert blank("") is None
    assert blank(" x ") == " x "
    assert blank(0) == 0


def test_truncate_counts_characters_not_bytes() -> None:
    t = make("truncate", 4)
    assert t("ABCDEF") == "ABCD"
    assert t("深圳市南山区") == "深圳市南"
    assert t("ab") == "ab"
    assert t("") == ""
    assert t(LONG) == "长长长长"
    with pytest.raises(ValueError):
        make("truncate", 0)


def test_replace_and_regex() -> None:
    assert make("replace", {"old": "-", "new": ""})("138-1234-5678") == "13812345678"
    assert make("regex_replace", {"pattern": r"\D", "repl": ""})("a1b2c3") == "123"
    assert make("regex_replace", {"pattern": r"(\d+)-(\d+)", "repl": r"\2/\1"})("10-20") == "20/10"
    with pytest.raises(ArgError):
        make("regex_replace", {"pattern": "("})
    with pytest.raises(ArgError):
        make("regex_replace", {"pattern": "a", "repl": r"\3"})


def test_regex_extract_policies() -> None:
    ex = make("regex_extract", {"pattern": r"SO-(\d+)", "group": 1})
    assert ex("ref SO-17 paid") == "17"
    rejects(ex, "nothing here", "does not match")
    assert make("regex_extract", {"pattern": r"\d+", "on_nomatch": "null"})("abc") is None
    assert make("regex_extract", {"pattern": r"\d+", "on_nomatch": "pass"})("abc") == "abc"
    assert make("regex_extract", {"pattern": r"(?P<n>\d+)", "group": "n"})("x42") == "42"
    with pytest.raises(ArgError):
        make("regex_extract", {"pattern": r"\d+", "group": 2})
    with pytest.raises(ArgError):
        make("regex_extract", {"pattern": r"\d+", "group": "missing"})


def test_split_and_join() -> None:
    assert make("split", ";")("a; b;;c ") == ["a", "b", "c"]
    assert make("split", {"sep": ",", "drop_empty": False, "trim": False})("a,,b") == ["a", "", "b"]
    assert make("split", "，")("甲，乙") == ["甲", "乙"]
    join = make("join", " ")
    assert join(["广东省", None, "", "深圳市"]) == "广东省 深圳市"
    assert join([]) is None
    assert join([None]) is None
    rejects(join, "abc", "expects a list")
    rejects(join, [{"a": 1}], "expected text")


# --- conversions ----------------------------------------------------------------------------------


def test_to_str() -> None:
    s = make("to_str")
    assert s(Decimal("12.50")) == "12.50"
    assert s(True) == "true"
    assert s(7) == "7"
    rejects(s, {"a": 1}, "an object")


def test_to_int() -> None:
    i = make("to_int")
    assert i("42") == 42
    assert i(" ４２ ") == 42  # full-width digits
    assert i(13.0) == 13
    assert i(Decimal("7.000")) == 7
    assert i(-3) == -3
    rejects(i, "4.5", "not a whole number")
    rejects(i, "", "not a number")
    rejects(i, "   ", "not a number")
    rejects(i, "十二", "not a number")
    rejects(i, True, "boolean")
    rejects(i, "1" * 200, "not a number")


def test_to_decimal() -> None:
    d = make("to_decimal")
    assert d("12.5") == Decimal("12.5")
    assert d(0.1) == Decimal("0.1")  # not 0.1000000000000000055...
    assert d("１２.５") == Decimal("12.5")
    assert d("-3e2") == Decimal("-300")
    assert d(".5") == Decimal("0.5")
    assert d("1,234.5") == Decimal("1234.5")  # groups of three: unambiguous
    rejects(d, "1,23.5", "ambiguous number")
    rejects(d, "NaN", "not a number")
    rejects(d, float("nan"), "finite")
    rejects(d, float("inf"), "finite")
    rejects(d, Decimal("Infinity"), "finite")
    rejects(d, [], "a list")


def test_to_float() -> None:
    assert make("to_float")("12.5") == 12.5
    assert make("to_float")(Decimal("0.1")) == 0.1


def test_to_bool() -> None:
    b = make("to_bool")
    for yes in (True, 1, "true", "TRUE", " yes ", "是", "1", "y"):
        assert b(yes) is True
    for no in (False, 0, "false", "no", "否", "0", "N"):
        assert b(no) is False
    rejects(b, "maybe", "not a yes/no value")
    rejects(b, 2, "not a yes/no value")
    rejects(b, "", "not a yes/no value")


# --- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "half_up", "half_even"),
    [
        ("2.345", "2.35", "2.34"),
        ("2.355", "2.36", "2.36"),
        ("2.5", "2.50", "2.50"),
        ("-2.345", "-2.35", "-2.34"),
        ("0.005", "0.01", "0.00"),
        ("0.015", "0.02", "0.02"),
        (2.675, "2.68", "2.68"),  # the float 2.675 is read as its text, so .5 rounds as written
        (1, "1.00", "1.00"),
    ],
)
def test_round_modes_at_half(value: Any, half_up: str, half_even: str) -> None:
    assert make("round", {"places": 2, "mode": "half_up"})(value) == Decimal(half_up)
    assert make("round", {"places": 2, "mode": "half_even"})(value) == Decimal(half_even)


def test_round_other_modes_and_errors() -> None:
    assert make("round", {"places": 0, "mode": "half_up"})("0.5") == Decimal("1")
    assert make("round", {"places": 0, "mode": "half_even"})("0.5") == Decimal("0")
    assert make("round", {"places": 0, "mode": "half_even"})("1.5") == Decimal("2")
    assert make("round", {"places": 1, "mode": "down"})("1.99") == Decimal("1.9")
    assert make("round", {"places": 1, "mode": "up"})("1.91") == Decimal("2.0")
    assert make("round", {"places": 0, "mode": "floor"})("-1.1") == Decimal("-2")
    assert make("round", {"places": 0, "mode": "ceiling"})("-1.9") == Decimal("-1")
    rejects(make("round", {"places": 2, "mode": "half_up"}), "abc", "not a number")
    rejects(make("round", {"places": 2, "mode": "half_up"}), "9" * 60, "too large")
    with pytest.raises(ValueError):
        make("round", {"places": 2})  # mode is required: the rounding rule is the author's call


def test_multiply() -> None:
    assert make("multiply", 100)("12.34") == Decimal("1234.00")
    assert make("multiply", "0.01")(1234) == Decimal("12.34")
    with pytest.raises(ArgError):
        make("multiply", "abc")


def test_money() -> None:
    cny = make("money", "CNY")
    assert cny("￥1,234.565") == Decimal("1234.57")
    assert cny("1234.5元") == Decimal("1234.50")
    assert cny(" ¥ １２ ") == Decimal("12.00")
    assert cny(12) == Decimal("12.00")
    assert cny("-0.005") == Decimal("-0.01")
    rejects(cny, "$12", "currency of")
    rejects(cny, "12 XYZ", "unknown currency")
    rejects(cny, "twelve", "not an amount")
    free = make("money")
    assert free("USD 12.345") == Decimal("12.35")
    assert free("JPY 1,235.5") == Decimal("1236")
    rejects(free, "12.5", "no currency")
    even = make("money", {"currency": "CNY", "mode": "half_even"})
    assert even("0.125") == Decimal("0.12")
    with pytest.raises(ValueError):
        make("money", "XXX")


def test_sum_first_last_count() -> None:
    total = make("sum")
    assert total(["1.10", 2, 0.2]) == Decimal("3.30")
    assert total([]) == Decimal(0)
    rejects(total, ["1", None], "item 1 of the list is empty")
    rejects(total, ["1", ""], "item 1")
    rejects(total, "12", "expects a list")
    rejects(total, ["x"], "not a number")
    assert make("first")(["a", "b"]) == "a"
    assert make("first")([]) is None
    assert make("last")(["a", "b"]) == "b"
    assert make("count")(None) == 0
    assert make("count")([1, 2, 3]) == 3
    rejects(make("count"), "abc", "expects a list")


# --- dates ----------------------------------------------------------------------------------------


def dt(frm: str, to: str, **kw: str) -> Fn:
    return make("datetime", {"from": frm, "to": to, **kw})


def test_iso_z_to_kingdee_shanghai() -> None:
    conv = dt("iso8601", "kingdee")
    assert conv("2026-03-01T02:30:00Z") == "2026-03-01 10:30:00"
    assert conv("2026-03-01T18:30:00.000Z") == "2026-03-02 02:30:00"  # crosses midnight
    assert conv("2026-03-01T10:30:00+08:00") == "2026-03-01 10:30:00"
    assert conv("2026-03-01T02:30:00") == "2026-03-01 10:30:00"  # naive ISO is UTC
    assert conv("2025-12-31T16:00:00Z") == "2026-01-01 00:00:00"  # crosses the year
    assert conv("") is None
    assert conv("   ") is None


def test_kingdee_to_iso_z() -> None:
    conv = dt("kingdee", "iso8601")
    assert conv("2026-03-02") == "2026-03-01T16:00:00.000Z"
    assert conv("2026-03-02 08:00:00") == "2026-03-02T00:00:00.000Z"
    assert conv("2025-01-02T14:49:44.537") == "2025-01-02T06:49:44.537Z"  # Kingdee's returned form
    assert dt("kingdee_t", "iso8601")("2026-03-02T08:00:00") == "2026-03-02T00:00:00.000Z"


def test_leap_days() -> None:
    conv = dt("kingdee", "date", to_tz="Asia/Shanghai")
    assert conv("2024-02-29 23:59:59") == "2024-02-29"
    rejects(conv, "2023-02-29", "not a valid date")
    rejects(conv, "2100-02-29 00:00:00", "not a valid date")  # 2100 is not a leap year
    assert dt("iso8601", "kingdee")("2024-02-28T16:00:00Z") == "2024-02-29 00:00:00"
    rejects(dt("iso8601", "kingdee"), "2023-02-29T00:00:00Z", "not an ISO 8601")


def test_malformed_dates() -> None:
    iso = dt("iso8601", "kingdee")
    for bad in (
        "2026-13-01T00:00:00Z",
        "2026-02-30 10:00",
        "yesterday",
        "2026/03/01",
        "2026-03-01T25:00:00Z",
    ):
        rejects(iso, bad)
    rejects(iso, 20260301, "expected a date/time text")
    rejects(dt("kingdee", "iso8601"), "2026-03-01 24:00:00", "not a valid date")
    rejects(dt("date", "iso8601"), "2026-03-01 10:00:00", "not a date")


def test_epoch_milliseconds() -> None:
    assert dt("epoch_ms", "iso8601")(1772332200000) == "2026-03-01T02:30:00.000Z"
    assert dt("epoch_ms", "kingdee")("1772332200000") == "2026-03-01 10:30:00"
    assert dt("iso8601", "epoch_ms")("2026-03-01T02:30:00.123Z") == 1772332200123
    assert dt("kingdee", "epoch_s")("1970-01-01 08:00:00") == 0
    assert dt("epoch_ms", "iso8601")(0) == "1970-01-01T00:00:00.000Z"
    rejects(dt("epoch_ms", "iso8601"), "soon", "epoch number")
    rejects(dt("epoch_ms", "iso8601"), True, "boolean")
    rejects(dt("epoch_ms", "iso8601"), 10**30, "")


def test_patterns_and_zones() -> None:
    assert dt("%Y/%m/%d", "date")("2026/03/01") == "2026-03-01"
    assert dt("iso8601", "%Y年%m月%d日", to_tz="Asia/Shanghai")("2026-03-01T18:00:00Z") == "2026年03月02日"
    assert (
        dt("iso8601", "iso8601", to_tz="Asia/Shanghai")("2026-03-01T02:30:00Z")
        == "2026-03-01T10:30:00.000+08:00"
    )
    assert dt("kingdee", "iso8601", from_tz="UTC")("2026-03-01 02:30:00") == "2026-03-01T02:30:00.000Z"
    # America/New_York switches to summer time on 2026-03-08: the same wall time is a different UTC hour.
    ny = dt("kingdee", "iso8601", from_tz="America/New_York")
    assert ny("2026-03-07 12:00:00") == "2026-03-07T17:00:00.000Z"
    assert ny("2026-03-09 12:00:00") == "2026-03-09T16:00:00.000Z"
    with pytest.raises(ArgError):
        dt("iso8601", "kingdee", to_tz="Mars/Olympus")
    with pytest.raises(ArgError):
        dt("rfc2822", "kingdee")


# --- identifiers ----------------------------------------------------------------------------------


def test_phone_transform_policies() -> None:
    phone = make("phone")
    assert phone("+86 138-1234-5678") == "13812345678"
    assert phone("１３８ １２３４ ５６７８") == "13812345678"
    assert phone("") is None
    assert phone("  ") is None
    rejects(phone, "12345", "not a mainland")
    rejects(phone, "电话：待定", "not a phone number")
    assert make("phone", "null")("12345") is None
    assert make("phone", "pass")("12345") == "12345"
    rejects(phone, LONG, "not a phone number")


def test_uscc_transform() -> None:
    uscc = make("uscc")
    assert uscc("91350100m000100y43") == "91350100M000100Y43"
    assert uscc("９１３５０１００Ｍ０００１００Ｙ４３") == "91350100M000100Y43"
    assert uscc(" 9135 0100 M000 100Y 43 ") == "91350100M000100Y43"
    rejects(uscc, "91350100M000100Y44", "check character")
    assert make("uscc", "null")("91350100M000100Y44") is None


# --- maps, lookups, default -----------------------------------------------------------------------


def test_value_map_policies() -> None:
    values = {"正式": "A", "潜在": "B", "13": "thirteen", "true": "yes"}
    strict = make("map", {"values": values})
    assert strict("正式") == "A"
    assert strict(13) == "thirteen"
    assert strict(True) == "yes"
    assert strict(None) is None
    rejects(strict, "流失", "not in the value map", code="unknown_value")
    rejects(strict, {"x": 1}, "not in the value map", code="unknown_value")
    assert make("map", {"values": values, "on_unknown": "null"})("流失") is None
    assert make("map", {"values": values, "on_unknown": "pass"})("流失") == "流失"
    assert make("map", {"values": values, "on_unknown": "default", "default": "Z"})("流失") == "Z"
    with pytest.raises(ArgError, match="needs a `default:`"):
        make("map", {"values": values, "on_unknown": "default"})


def test_lookup_policies() -> None:
    mat = make("lookup", {"table": "material_codes", "key": "crm_sku", "value": "kingdee_number"})
    assert mat("P-1001") == "1.01.001"
    assert mat("P-1020") == "1.01.020"
    rejects(mat, "P-9999", "lookup table material_codes", code="lookup_missing")
    rejects(mat, "p-1001", "'p-1001'", code="lookup_missing")  # no case folding: normalise first
    assert make("lookup", {"table": "units"})("台") == "Set"  # first column -> second column
    reverse = make("lookup", {"table": "currencies", "key": "kingdee_currency", "value": "crm_currency"})
    assert reverse("PRE007") == "USD"
    assert make("lookup", {"table": "units", "on_missing": "null"})("套") is None
    assert make("lookup", {"table": "units", "on_missing": None})("套") is None  # YAML `null`
    assert make("lookup", {"table": "units", "on_missing": "pass"})("套") == "套"
    assert make("lookup", {"table": "units", "on_missing": "default", "default": "Pcs"})("套") == "Pcs"
    assert make("lookup", {"table": "tax_rates"})(13) == "13"
    with pytest.raises(ArgError, match="unknown lookup table 'nope'"):
        make("lookup", {"table": "nope"})
    with pytest.raises(ArgError, match="no column 'sku'"):
        make("lookup", {"table": "material_codes", "key": "sku"})


def test_default_transform() -> None:
    d = make("default", 0)
    assert d(None) == 0
    assert d("  ") == 0
    assert d("x") == "x"
    assert d(False) is False
