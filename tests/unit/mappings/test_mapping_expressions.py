"""Issue 11 item 2: expressions, cases, let, params, include and the richer lookups."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from erphub.core.errors import MappingError
from erphub.mappings import Mapped, Plan, Rejected, compile_mapping, compile_text

HEAD = "source: a\ntarget: b\n"


def plan(body: str, **kw: Any) -> Plan:
    return compile_text(HEAD + body, file="t.yaml", **kw)


def out(p: Plan, record: dict[str, Any]) -> dict[str, Any]:
    res = p.apply(record)
    assert isinstance(res, Mapped), res
    return res.data


LINE = {"qty": "3", "price": "113.00", "tax_rate": 13}


@pytest.mark.parametrize(("text", "want"), [
    ("qty * price", Decimal("339.00")),
    ("round(price / (1 + tax_rate / 100), 2)", Decimal("100.00")),
    ("(qty + 1) * 2 - 1", Decimal("7")),
    ("price % 100", Decimal("13.00")),
    ("-qty", Decimal("-3")),
    ("if qty > 2 then 'many' else 'few'", "many"),
    ("if qty == 3 and not (price < 100) then 1 else 0", Decimal("1")),
    ("upper('ab') & '-' & text(qty)", "AB-3"),
    ("missing * 2", None),  # arithmetic with null is null
    ("coalesce(missing, qty)", "3"),
    ("substr('SO-17', 3)", "17"),
    ("pad_left(qty, 4, '0')", "0003"),
    ("len('深圳市')", Decimal("3")),
])
def test_arithmetic_comparisons_and_text(text: str, want: Any) -> None:
    p = compile_text(HEAD + "fields:\n  x:\n    expr: " + repr(text).replace("\\'", "''") + "\n", file="t.yaml")
    assert out(p, LINE)["x"] == want


def test_dates_lists_and_money() -> None:
    p = plan("""fields:
  due: {expr: "add_days(date(order_date), 30)"}
  next: {expr: "add_months(date('2026-01-31'), 1)"}
  span: {expr: "days_between(date(order_date), date('2026-04-01'))"}
  shown: {expr: "format_date(add_days(date(order_date), 1), '%Y/%m/%d')"}
  total: {expr: "sum(lines[*].amount)"}
  top: {expr: "max(lines[*].amount)"}
  low: {expr: "min(lines[*].amount)"}
  n: {expr: "count(lines)"}
  skus: {expr: "distinct(lines[*].sku)"}
  by_rate: {expr: "group_sum(lines, 'rate', 'amount')"}
  paid: {expr: "money(amount, currency)"}
""")
    record = {"order_date": "2026-03-02 00:00:00", "currency": "JPY", "amount": "1234.5",
              "lines": [{"sku": "A", "amount": "10.50", "rate": 13}, {"sku": "B", "amount": 2, "rate": 9},
                        {"sku": "A", "amount": "1,000.00", "rate": 13}]}
    data = out(p, record)
    assert data["due"] == "2026-04-01" and data["next"] == "2026-02-28" and data["span"] == Decimal(30)
    assert data["shown"] == "2026/03/03"
    assert (data["total"], data["top"], data["low"], data["n"]) == (
        Decimal("1012.50"), Decimal("1000.00"), Decimal("2"), Decimal(3))
    assert data["skus"] == ["A", "B"]
    assert data["by_rate"] == [{"key": 13, "sum": Decimal("1010.50")}, {"key": 9, "sum": Decimal("2")}]
    assert data["paid"] == Decimal("1235")  # JPY has no minor unit: the currency came from the record
    assert out(p, {**record, "currency": "USD"})["paid"] == Decimal("1234.50")
    bad = p.apply({**record, "currency": "XXX"})
    assert isinstance(bad, Rejected) and bad.field == "paid" and "unknown currency 'XXX'" in bad.reason


def test_target_references_cases_and_let() -> None:
    p = plan("""let:
  net: "price / (1 + tax_rate / 100)"
  net2: "round(net, 2)"
fields:
  total: {expr: "round(qty * price, 2)"}
  net_price: {expr: "net2"}
  grade:
    cases:
      - {if: "target.total >= 1000", then: A}
      - {if: "target.total >= 100", then: {expr: "'B' & text(qty)"}}
      - {else: C}
  lines:
    from: items
    each:
      fields:
        amt: {expr: "qty * price"}
        note: {expr: "$.order_no & '/' & text(target.amt)"}
""")
    data = out(p, {**LINE, "order_no": "SO1", "items": [{"qty": 2, "price": "1.5"}]})
    assert data["total"] == Decimal("339.00") and data["net_price"] == Decimal("100.00")
    assert data["grade"] == "B3"
    assert data["lines"] == [{"amt": Decimal("3.0"), "note": "SO1/3.0"}]
    assert out(p, {**LINE, "qty": 10, "order_no": "x", "items": []})["grade"] == "A"
    assert out(p, {**LINE, "qty": 0, "order_no": "x", "items": []})["grade"] == "C"


def test_an_expression_that_cannot_be_evaluated_rejects_naming_the_field() -> None:
    p = plan("fields:\n  x: {expr: \"qty * price\"}\n  y: {expr: \"if flag then 1 else 2\"}\n"
             "  z: {expr: \"1 / qty\"}\n")
    for record, field, fragment in (({"qty": "abc", "price": 1, "flag": True}, "x", "'abc' is not a number"),
                                    ({"qty": 1, "price": 1, "flag": "yes"}, "y", "not true or false"),
                                    ({"qty": 0, "price": 1, "flag": True}, "z", "division by zero")):
        res = p.apply(record)
        assert isinstance(res, Rejected) and res.field == field and fragment in res.reason, res


def test_expression_conditions_in_filters_and_when() -> None:
    p = plan("filter: \"stage == '赢单' and amount > 0\"\nfields:\n  x: {from: amount, when: \"amount >= 10\"}\n")
    assert out(p, {"stage": "赢单", "amount": "12"}) == {"x": "12"}
    assert out(p, {"stage": "赢单", "amount": "5"}) == {}
    res = p.apply({"stage": "赢单", "amount": "abc"})
    assert isinstance(res, Rejected) and res.code == "condition"  # never a silent skip


@pytest.mark.parametrize(("text", "col", "fragment"), [  # the expression starts at column 14
    ("qty * * price", 20, "expected a value, found '*'"),
    ("foo(1)", 14, "unknown function 'foo'"),
    ("__import__('os')", 14, "unknown function '__import__'"),
    ("round(qty, 2, 'nearest')", 28, "unknown rounding mode 'nearest'"),
    ("upper()", 14, "upper() takes 1 argument(s), got 0"),
    ("qty +", 19, "expected a value, found the end"),
    ("'abc", 14, "unexpected character"),
    ("${param:nope}", 14, "unknown parameter 'nope'"),
])
def test_expression_errors_name_file_line_and_column(text: str, col: int, fragment: str) -> None:
    with pytest.raises(MappingError) as info:
        compile_text(HEAD + 'fields:\n  x: {expr: "' + text + '"}\n', file="m.yaml")
    err = info.value
    assert (err.file, err.line, err.column, err.field) == ("m.yaml", 4, col, "fields.x.expr"), err.render()
    assert fragment in err.message


def test_params_from_the_mapping_and_the_pipeline() -> None:
    body = "params: {org_number: \"100\"}\nfields:\n  org: {const: {FNumber: \"${param:org_number}\"}}\n" \
           "  tag: {expr: \"'ORG-' & ${param:org_number}\"}\n"
    assert out(plan(body), {}) == {"org": {"FNumber": "100"}, "tag": "ORG-100"}
    assert out(plan(body, params={"org_number": "200"}), {}) == {"org": {"FNumber": "200"}, "tag": "ORG-200"}
    with pytest.raises(MappingError) as info:
        plan("fields:\n  org: {const: \"${param:org}\"}\n")
    assert (info.value.line, info.value.field) == (4, "fields.org.const")
    assert "unknown parameter 'org'" in info.value.message


def test_include_shares_params_lets_and_fields(tmp_path: Path) -> None:
    (tmp_path / "shared.yaml").write_text(
        'params: {org_number: "100"}\nlet:\n  net: "price / (1 + tax_rate / 100)"\n'
        'fields:\n  FCreateOrgId: {const: {FNumber: "${param:org_number}"}}\n', encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(HEAD + "include: [shared.yaml]\nfields:\n  x: {expr: \"round(net, 2)\"}\n", encoding="utf-8")
    p = compile_mapping(mapping, params={"org_number": "300"})
    assert out(p, LINE) == {"FCreateOrgId": {"FNumber": "300"}, "x": Decimal("100.00")}
    (tmp_path / "shared.yaml").write_text('fields:\n  bad: {expr: "1 +"}\n', encoding="utf-8")
    with pytest.raises(MappingError) as info:
        compile_mapping(mapping)
    assert (info.value.file, info.value.line) == (str(tmp_path / "shared.yaml"), 2)  # the fragment's own line


def test_lookups_with_composite_keys_several_columns_and_dates(tmp_path: Path) -> None:
    (tmp_path / "prices.csv").write_text(
        "sku,currency,valid_from,valid_to,price,unit\n"
        "A,CNY,2026-01-01,2026-03-01,10.00,Pcs\n"
        "A,CNY,2026-03-01,,12.00,Pcs\n"
        "A,USD,2026-01-01,,1.50,Pcs\n", encoding="utf-8")
    p = plan("""fields:
  price: {expr: "lookup_asof('prices', 'price', date(order_date), 'sku', sku, 'currency', currency)"}
  both: {expr: "lookup_asof('prices', ['price', 'unit'], date(order_date), 'sku', sku, 'currency', currency)"}
""", lookups_dir=tmp_path)
    assert out(p, {"sku": "A", "currency": "CNY", "order_date": "2026-02-28"})["price"] == "10.00"
    assert out(p, {"sku": "A", "currency": "CNY", "order_date": "2026-03-01"})["both"] == {"price": "12.00",
                                                                                          "unit": "Pcs"}
    assert out(p, {"sku": "A", "currency": "USD", "order_date": "2026-05-01"})["price"] == "1.50"
    res = p.apply({"sku": "A", "currency": "CNY", "order_date": "2025-12-31"})
    assert isinstance(res, Rejected) and res.code == "lookup_missing" and "valid on 2025-12-31" in res.reason
    (tmp_path / "codes.csv").write_text("sku,unit,kd\nA,个,1.01\nA,箱,1.02\n", encoding="utf-8")
    q = plan("fields:\n  x: {expr: \"lookup('codes', 'kd', 'sku', sku, 'unit', unit)\"}\n", lookups_dir=tmp_path)
    assert out(q, {"sku": "A", "unit": "箱"})["x"] == "1.02"
    with pytest.raises(MappingError) as info:
        plan("fields:\n  x: {expr: \"lookup('codes', 'kd', 'sku', sku)\"}\n", lookups_dir=tmp_path)
    assert "has the key ('A',) twice" in info.value.message


def test_shipped_mappings_use_params_and_an_expression_for_net_prices() -> None:
    root = Path(__file__).resolve().parents[3] / "mappings"
    for name in ("jiandaoyun_to_kingdee/customer.yaml", "jiandaoyun_to_kingdee/sales_order.yaml",
                 "jiandaoyun_to_yonyou/customer.yaml", "jiandaoyun_to_yonyou/sales_order.yaml"):
        text = (root / name).read_text(encoding="utf-8")
        assert "${param:org_number}" in text and '"100"}}' not in text.replace('params: {org_number: "100"}', "")
    tryton = compile_mapping(root / "jiandaoyun_to_tryton/sales_order.yaml")
    assert "round(price / (1 + coalesce(tax_rate, 13) / 100), 4)" in (
        root / "jiandaoyun_to_tryton/sales_order.yaml").read_text(encoding="utf-8")
    assert tryton.target_entity == "sales_order"
