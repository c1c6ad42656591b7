"""The mapping language feature by feature, through compile_text and Plan.apply."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from erphub.core.records import canonical_json
from erphub.mappings import Mapped, Plan, Rejected, Skipped, compile_mapping, compile_text

HEAD = "source: a\ntarget: b\n"


def plan(body: str, **kw: Any) -> Plan:
    return compile_text(HEAD + body, file="t.yaml", **kw)


def mapped(outcome: Any) -> dict[str, Any]:
    assert isinstance(outcome, Mapped), outcome
    return outcome.data


def rejected(outcome: Any, field: str, code: str, fragment: str = "") -> None:
    assert isinstance(outcome, Rejected), outcome
    assert (outcome.field, outcome.code) == (field, code), outcome
    assert fragment in outcome.reason, outcome.reason


def test_plan_metadata() -> None:
    p = plan("key: code\nowns: [code, name]\nfields:\n  code: c\n  name: n\n  extra.x: e\n")
    assert (p.source_entity, p.target_entity, p.key_field, p.source_file) == ("a", "b", "code", "t.yaml")
    assert p.owned_fields == frozenset({"code", "name"})
    assert p.produced_fields == frozenset({"code", "name", "extra"})
    assert plan("fields:\n  x: y\n").owned_fields is None
    assert plan("fields:\n  x: y\n").key_field is None


def test_paths_constants_and_nested_targets() -> None:
    p = plan("""fields:
  phone: customer.contact.phone
  first_sku: {from: "items[0].sku"}
  skus: {from: "items[*].sku"}
  org: {const: {FNumber: "100"}}
  FCustId.FNumber: code
  flag: {const: true}
  nothing: {const: null}
""")
    record = {"customer": {"contact": {"phone": "138"}}, "items": [{"sku": "A"}, {"sku": "B"}], "code": "C1"}
    out = mapped(p.apply(record))
    assert out == {
        "phone": "138",
        "first_sku": "A",
        "skus": ["A", "B"],
        "org": {"FNumber": "100"},
        "FCustId": {"FNumber": "C1"},
        "flag": True,
        "nothing": None,
    }
    # constants are fresh per record: changing one output never leaks into the next
    out["org"]["FNumber"] = "changed"
    assert mapped(p.apply(record))["org"] == {"FNumber": "100"}


def test_missing_source_gives_null_not_an_error() -> None:
    assert mapped(plan("fields:\n  x: a.b.c\n").apply({})) == {"x": None}


def test_default_replaces_null_and_blank() -> None:
    p = plan("fields:\n  cur: {from: currency, default: CNY, transforms: [upper]}\n")
    assert mapped(p.apply({}))["cur"] == "CNY"
    assert mapped(p.apply({"currency": "  "}))["cur"] == "CNY"
    assert mapped(p.apply({"currency": "usd"}))["cur"] == "USD"
    assert mapped(plan("fields:\n  n: {from: n, default: 0}\n").apply({"n": 0}))["n"] == 0


def test_coalesce_takes_the_first_non_empty() -> None:
    p = plan("fields:\n  name: {coalesce: [short_name, alias, name]}\n")
    assert mapped(p.apply({"short_name": " ", "alias": "", "name": "全称"}))["name"] == "全称"
    assert mapped(p.apply({"short_name": "简称", "name": "全称"}))["name"] == "简称"
    assert mapped(p.apply({}))["name"] is None


def test_templates() -> None:
    p = plan("""fields:
  full: {template: "{first_name} {last_name}"}
  addr: {template: "{address.province}{address.city}{address.detail}"}
  money: {template: "{currency} {amount:.2f}"}
  braces: {template: "{{{code}}}"}
""")
    out = mapped(
        p.apply(
            {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "address": {"province": "广东省", "detail": "科技园"},
                "currency": "CNY",
                "amount": 12.5,
                "code": 7,
            }
        )
    )
    assert out == {"full": "Ada Lovelace", "addr": "广东省科技园", "money": "CNY 12.50", "braces": "{7}"}
    empty = mapped(p.apply({}))
    assert empty["addr"] is None  # nothing filled in: null, so `required` can catch it
    rejected(p.apply({"amount": "x", "currency": "CNY"}), "money", "transform", "cannot format 'x'")
    rejected(p.apply({"first_name": {"a": 1}}), "full", "transform", "object or list")


def test_transforms_run_in_order() -> None:
    p = plan("fields:\n  x: {from: v, transforms: [halfwidth, trim, upper, {truncate: 3}]}\n")
    assert mapped(p.apply({"v": "  ａｂｃｄ "}))["x"] == "ABC"
    p = plan("fields:\n  x: {from: v, transforms: [{truncate: 3}, trim]}\n")
    assert mapped(p.apply({"v": "  ａｂｃｄ "}))["x"] == "ａ"


def test_map_then_lookup_at_field_level_run_after_transforms() -> None:
    p = plan(
        "fields:\n  unit:\n    from: u\n    transforms: [trim]\n"
        "    map: {values: {pcs: 个}, on_unknown: pass}\n"
        "    lookup: {table: units}\n"
    )
    assert mapped(p.apply({"u": " pcs "}))["unit"] == "Pcs"
    assert mapped(p.apply({"u": "台"}))["unit"] == "Set"
    rejected(p.apply({"u": "套"}), "unit", "lookup_missing", "code '套' not found in lookup table units")


def test_value_map_on_unknown_error_rejects() -> None:
    p = plan("fields:\n  s: {from: status, map: {values: {正式: A, 潜在: B}}}\n")
    assert mapped(p.apply({"status": "潜在"}))["s"] == "B"
    rejected(p.apply({"status": "流失"}), "s", "unknown_value", "'流失' is not in the value map")


def test_lookup_shorthand_and_lookups_dir(tmp_path: Path) -> None:
    (tmp_path / "grades.csv").write_text("code,label\nA,优\nB,良\n", encoding="utf-8")
    p = plan("fields:\n  g: {from: grade, lookup: grades}\n", lookups_dir=tmp_path)
    assert mapped(p.apply({"grade": "A"}))["g"] == "优"
    # the table was read at compile time: deleting the file does not affect applying
    (tmp_path / "grades.csv").unlink()
    assert mapped(p.apply({"grade": "B"}))["g"] == "良"


def test_when_omits_the_field() -> None:
    p = plan("""fields:
  amount: amount
  usd_amount:
    from: amount
    when: {path: currency, eq: USD}
""")
    assert mapped(p.apply({"amount": 5, "currency": "USD"})) == {"amount": 5, "usd_amount": 5}
    assert mapped(p.apply({"amount": 5, "currency": "CNY"})) == {"amount": 5}


@pytest.mark.parametrize(
    ("cond", "record", "expected"),
    [
        ("{path: s, eq: 赢单}", {"s": "赢单"}, True),
        ("{path: s, eq: 赢单}", {"s": "输单"}, False),
        ("{path: n, eq: 13}", {"n": 13.0}, True),
        ("{path: n, eq: 13}", {"n": "13"}, False),
        ("{path: b, eq: true}", {"b": 1}, False),
        ("{path: s, ne: 赢单}", {}, True),
        ("{path: s, in: [a, b]}", {"s": "b"}, True),
        ("{path: s, not_in: [a, b]}", {"s": "c"}, True),
        ("{path: n, gt: 0}", {"n": 0.01}, True),
        ("{path: n, gt: 0}", {"n": " 5 "}, True),
        ("{path: n, gt: 0}", {"n": "five"}, False),
        ("{path: n, gt: 0}", {"n": True}, False),
        ("{path: n, gte: 10}", {"n": 10}, True),
        ("{path: n, lt: 10}", {"n": 10}, False),
        ("{path: n, lte: 10}", {"n": Decimal("10.0")}, True),
        ("{path: n, lte: 10}", {"n": None}, False),
        ("{path: s, matches: '^SO-'}", {"s": "SO-1"}, True),
        ("{path: s, matches: '^SO-'}", {"s": 5}, False),
        ("{path: s, present: true}", {"s": " "}, False),
        ("{path: s, present: false}", {"s": []}, True),
        ("{all: [{path: a, eq: 1}, {path: b, eq: 2}]}", {"a": 1, "b": 2}, True),
        ("{all: [{path: a, eq: 1}, {path: b, eq: 2}]}", {"a": 1}, False),
        ("{any: [{path: a, eq: 1}, {path: b, eq: 2}]}", {"b": 2}, True),
        ("{not: {path: a, eq: 1}}", {"a": 1}, False),
    ],
)
def test_conditions(cond: str, record: dict[str, Any], expected: bool) -> None:
    p = plan(f"filter: {cond}\nfields:\n  x: {{const: 1}}\n")
    assert isinstance(p.apply(record), Mapped) is expected


def test_record_filter_with_and_without_reason() -> None:
    p = plan(
        "filter:\n  - when: {path: stage, eq: 赢单}\n    reason: only won opportunities\n"
        "  - {path: amount, gt: 0}\nfields:\n  x: stage\n"
    )
    assert p.apply({"stage": "报价"}) == Skipped("only won opportunities")
    assert p.apply({"stage": "赢单", "amount": 0}) == Skipped("filter not met: amount gt 0 (got 0)")
    assert isinstance(p.apply({"stage": "赢单", "amount": 1}), Mapped)


def test_child_collections() -> None:
    p = plan("""fields:
  no: order_no
  entries:
    from: lines
    validate: {required: true, length: {min: 1, max: 3}}
    each:
      filter: {path: qty, gt: 0}
      fields:
        sku: {from: sku, lookup: {table: material_codes}}
        qty: {from: qty, transforms: [to_decimal]}
        currency: $.currency
        note: {template: "{$.order_no}/{sku}"}
""")
    record: dict[str, Any] = {
        "order_no": "SO-1",
        "currency": "CNY",
        "lines": [{"sku": "P-1001", "qty": 2}, {"sku": "P-1002", "qty": 0}, {"sku": "P-1003", "qty": "1.5"}],
    }
    out = mapped(p.apply(record))
    assert out["entries"] == [
        {"sku": "1.01.001", "qty": Decimal("2"), "currency": "CNY", "note": "SO-1/P-1001"},
        {"sku": "1.01.003", "qty": Decimal("1.5"), "currency": "CNY", "note": "SO-1/P-1003"},
    ]
    # the field path names the source line index, so the person finds the line in the CRM
    bad = copy.deepcopy(record)
    bad["lines"][2]["sku"] = "P-9999"
    rejected(p.apply(bad), "entries[2].sku", "lookup_missing", "material_codes")
    rejected(p.apply({**record, "lines": []}), "entries", "required", "(source: lines)")
    rejected(p.apply({**record, "lines": None}), "entries", "required")
    rejected(p.apply({**record, "lines": [{"qty": 1}] * 4}), "entries", "length", "length 4 is not between 1 and 3")
    rejected(p.apply({**record, "lines": "P-1001"}), "entries", "type", "expected a list of lines")
    rejected(p.apply({**record, "lines": [{"sku": "P-1001", "qty": 1}, 7]}), "entries[1]", "type", "not an object")


def test_nested_child_target_path() -> None:
    p = plan("fields:\n  a.rows:\n    from: xs\n    each:\n      fields:\n        v: v\n")
    assert mapped(p.apply({"xs": [{"v": 1}]})) == {"a": {"rows": [{"v": 1}]}}


@pytest.mark.parametrize(
    ("rule", "good", "bad", "code", "fragment"),
    [
        ("{required: true}", "x", "  ", "required", "required value is missing (source: v)"),
        ("{type: string}", "x", 5, "type", "expected string, got a number 5"),
        ("{type: integer}", 5, True, "type", "expected integer"),
        ("{type: number}", Decimal("1.5"), "1.5", "type", "expected number"),
        ("{type: boolean}", False, "false", "type", "expected boolean"),
        ("{type: object}", {"a": 1}, [1], "type", "expected object"),
        ("{type: list}", [], {}, "type", "expected list"),
        ("{regex: 'CUS-\\d{6}'}", "CUS-000123", "CUS-000123X", "regex", "does not match CUS-\\d{6}"),
        ("{length: 18}", "a" * 18, "a" * 17, "length", "length 17 is not exactly 18"),
        ("{length: {max: 4}}", "深圳南山", "深圳南山区", "length", "length 5 is not between 0 and 4"),
        ("{range: {min: 0, max: 100}}", "100", 100.01, "range", "100.01 is out of range (min 0, max 100)"),
        ("{range: {gt: 0}}", 0.001, 0, "range", "0 is out of range (gt 0)"),
        ("{range: {lt: 1}}", 0, "abc", "type", "range applies to numbers"),
        ("{one_of: [CNY, USD]}", "USD", "EUR", "one_of", "'EUR' is not one of 'CNY', 'USD'"),
        ("{one_of: [0, 6, 9, 13]}", 13.0, 17, "one_of", "17 is not one of"),
    ],
)
def test_validation_rules(rule: str, good: Any, bad: Any, code: str, fragment: str) -> None:
    p = plan(f"fields:\n  f: {{from: v, validate: {rule}}}\n")
    assert mapped(p.apply({"v": good}))["f"] == good
    rejected(p.apply({"v": bad}), "f", code, fragment)


def test_rules_other_than_required_let_null_through() -> None:
    p = plan("fields:\n  f: {from: v, validate: {type: string, regex: 'x', length: 3, range: {min: 1}, one_of: [a]}}\n")
    assert mapped(p.apply({}))["f"] is None


def test_key_is_always_required_and_always_text() -> None:
    p = plan("key: code\nfields:\n  code: c\n  name: n\n")
    assert p.apply({"c": "C1"}) == Mapped({"code": "C1", "name": None}, "C1")
    assert p.apply({"c": 42}) == Mapped({"code": 42, "name": None}, "42")
    rejected(p.apply({"n": "x"}), "code", "required", "(source: c)")
    nested = plan("key: FCustId.FNumber\nfields:\n  FCustId.FNumber: c\n")
    assert nested.apply({"c": "K"}) == Mapped({"FCustId": {"FNumber": "K"}}, "K")


def test_omit_if_null() -> None:
    p = plan("fields:\n  a: {from: a, omit_if_null: true}\n  b: {from: b}\n")
    assert mapped(p.apply({})) == {"b": None}
    assert mapped(p.apply({"a": 1})) == {"a": 1, "b": None}


def test_apply_never_raises_on_hostile_input() -> None:
    p = compile_mapping(Path(__file__).resolve().parents[3] / "mappings/jiandaoyun_to_kingdee/sales_order.yaml")
    record: Any
    for record in (
        None,
        [],
        "text",
        5,
        {"lines": 5},
        {"lines": [None]},
        {"order_date": {"x": 1}},
        {"order_no": ["a"], "lines": [{"qty": float("nan")}]},
    ):
        outcome = p.apply(record)
        assert isinstance(outcome, Rejected | Skipped | Mapped)
    rejected(p.apply(None), "", "input", "expected a record object, got NoneType")  # type: ignore[arg-type]


def test_apply_is_pure() -> None:
    p = plan(
        "fields:\n  x: {from: v, transforms: [trim, upper]}\n  rows:\n    from: xs\n    each:\n"
        "      fields:\n        y: {from: y, transforms: [to_decimal]}\n"
    )
    record = {"v": " a ", "xs": [{"y": "1"}]}
    before = copy.deepcopy(record)
    first, second = p.apply(record), p.apply(record)
    assert record == before
    assert first == second


def test_output_is_json_serialisable_by_the_engine() -> None:
    p = plan("fields:\n  d: {from: v, transforms: [{round: {places: 2, mode: half_up}}]}\n")
    out = mapped(p.apply({"v": "1.005"}))
    assert canonical_json(out) == '{"d":"1.01"}'


def test_tables_nested_inside_lines() -> None:
    p = plan(
        "fields:\n  entries:\n    from: lines\n    each:\n      fields:\n        sku: sku\n"
        "        plans:\n          from: deliveries\n          validate: {required: true}\n          each:\n"
        "            fields:\n              qty: {from: qty, transforms: [to_decimal], validate: {range: {gt: 0}}}\n"
    )
    record = {"lines": [{"sku": "A", "deliveries": [{"qty": 1}, {"qty": "2"}]}]}
    assert mapped(p.apply(record)) == {"entries": [{"sku": "A", "plans": [{"qty": Decimal(1)}, {"qty": Decimal(2)}]}]}
    rejected(
        p.apply({"lines": [{"sku": "A", "deliveries": [{"qty": 1}]}, {"sku": "B", "deliveries": [{"qty": 0}]}]}),
        "entries[1].plans[0].qty",
        "range",
        "0 is out of range",
    )
    rejected(p.apply({"lines": [{"sku": "A"}]}), "entries[0].plans", "required", "(source: deliveries)")
    rejected(p.apply({"lines": [{"sku": "A", "deliveries": [{"qty": "x"}]}]}), "entries[0].plans[0].qty", "transform")


def test_names_with_quotes_are_data_not_code() -> None:
    # Target names and source keys are written into the generated function as repr() literals.
    body = r"""fields:
  "a'); raise SystemExit('":
    from: '["k\''); raise SystemExit(''"]'
"""
    p = plan(body)
    key = "k\\'); raise SystemExit('"
    assert mapped(p.apply({key: 1})) == {"a'); raise SystemExit('": 1}
    assert "def fields(scope, root, out):" in p._steps[0].source  # type: ignore[attr-defined]
