"""Issue 11 item 1 (and issue 10 item 9): every value is exact or the record is rejected naming the
field. Each test here is one silent-wrong case a mapping author found; each failed on the old code."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from erphub.mappings import Mapped, Plan, Rejected, Skipped, compile_text
from erphub.mappings.report import dumps

HEAD = "source: a\ntarget: b\n"


def plan(body: str, **kw: Any) -> Plan:
    return compile_text(HEAD + body, file="t.yaml", **kw)


def value(p: Plan, record: dict[str, Any], field: str = "x") -> Any:
    out = p.apply(record)
    assert isinstance(out, Mapped), out
    return out.data[field]


def rejected(p: Plan, record: Any, fragment: str, field: str = "x") -> Rejected:
    out = p.apply(record)
    assert isinstance(out, Rejected), out
    assert out.field == field, out
    assert fragment in out.reason, out.reason
    return out


# --- numbers and money -----------------------------------------------------------------------------

MONEY_EUR = "fields:\n  x: {from: v, transforms: [{money: EUR}]}\n"
MONEY_CNY = "fields:\n  x: {from: v, transforms: [{money: CNY}]}\n"


def test_a_decimal_comma_is_not_read_as_a_thousands_separator() -> None:
    rejected(plan(MONEY_EUR), {"v": "12,50"}, "ambiguous number '12,50'")  # was 1250.00
    assert value(plan("decimal: comma\n" + MONEY_EUR), {"v": "12,50"}) == Decimal("12.50")
    assert value(plan("decimal: comma\n" + MONEY_EUR), {"v": "€1.234,5"}) == Decimal("1234.50")
    rejected(plan("decimal: comma\n" + MONEY_EUR), {"v": "12.50"}, "ambiguous number")


def test_full_width_comma_and_bad_grouping_are_refused() -> None:
    rejected(plan(MONEY_CNY), {"v": "12，50"}, "full-width")  # was 1250.00
    rejected(plan(MONEY_CNY), {"v": "1,2,3"}, "ambiguous number '1,2,3'")  # was 123.00
    rejected(plan(MONEY_CNY), {"v": "1,234,56"}, "ambiguous")
    rejected(plan("fields:\n  x: {from: v, transforms: [to_decimal]}\n"), {"v": "1.234.5"}, "ambiguous")
    assert value(plan(MONEY_CNY), {"v": "￥1,234.565"}) == Decimal("1234.57")
    assert value(plan(MONEY_CNY), {"v": "-¥12"}) == Decimal("-12.00")


def test_nan_and_infinity_are_refused_even_untransformed() -> None:
    p = plan("fields:\n  x: v\n  y: {from: obj}\n")
    for bad in (float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("-Infinity")):
        rejected(p, {"v": bad}, "not a finite number")
    rejected(p, {"v": 1, "obj": {"deep": [1, float("nan")]}}, "not a finite number", field="y")
    record = json.loads('{"v": NaN}')  # Python's json reads NaN; the plan must not pass it on
    rejected(p, record, "NaN")
    rejected(plan("fields:\n  x: {template: '{v:.2f}'}\n"), {"v": float("nan")}, "finite")


def test_template_number_formats_round_like_round() -> None:
    p = plan("fields:\n  x: {template: '{v:.2f}'}\n  y: {from: v, transforms: [{round: {places: 2, mode: half_up}}]}\n")
    out = p.apply({"v": 2.675})
    assert isinstance(out, Mapped)
    assert out.data["x"] == "2.68" and out.data["y"] == Decimal("2.68")  # template was 2.67
    assert value(p, {"v": "-0.001"}) == "0.00"
    assert value(p, {"v": Decimal("1E-7")}, "x") == "0.00"
    assert value(plan("fields:\n  x: {template: 'n={v}'}\n"), {"v": Decimal("1E-7")}) == "n=0.0000001"


def test_no_negative_zero_and_no_exponent() -> None:
    p = plan("fields:\n  x: {from: v, transforms: [{round: {places: 2, mode: half_up}}]}\n")
    assert str(value(p, {"v": -0.001})) == "0.00"  # was -0.00
    assert str(value(plan(MONEY_CNY), {"v": "-0.001"})) == "0.00"
    out = plan("fields:\n  x: {from: v, transforms: [to_decimal]}\n  s: {from: v, transforms: [to_str]}\n")
    res = out.apply({"v": "0.0000001"})
    assert isinstance(res, Mapped)
    assert res.data["s"] == "0.0000001"  # was '1E-7'
    assert '"0.0000001"' in dumps(res.data)


# --- dates -----------------------------------------------------------------------------------------

def dt(args: str) -> Plan:
    return plan(f"fields:\n  x: {{from: v, transforms: [{{datetime: {args}}}]}}\n")


def test_a_date_keeps_its_calendar_date() -> None:
    assert value(dt("{from: kingdee, to: date}"), {"v": "2026-03-02 00:00:00"}) == "2026-03-02"  # was 03-01
    assert value(dt("{from: kingdee, to: '%Y/%m/%d'}"), {"v": "2026-03-02 00:30:00"}) == "2026/03/02"
    assert value(dt("{from: date, to: kingdee}"), {"v": "2026-03-02"}) == "2026-03-02 00:00:00"  # was 08:00
    assert value(dt("{from: iso8601, to: date}"), {"v": "2026-03-02"}) == "2026-03-02"
    # a zone conversion that is asked for still happens
    assert value(dt("{from: iso8601, to: date, to_tz: Asia/Shanghai}"),
                 {"v": "2026-03-01T16:00:00Z"}) == "2026-03-02"
    assert value(dt("{from: iso8601, to: kingdee}"), {"v": "2026-03-01T18:30:00Z"}) == "2026-03-02 02:30:00"


def test_dst_gaps_and_overlaps_follow_the_declared_policy() -> None:
    ny = "from: kingdee, to: iso8601, from_tz: America/New_York"
    rejected(dt("{" + ny + "}"), {"v": "2026-03-08 02:30:00"}, "does not exist")
    assert value(dt("{" + ny + ", on_nonexistent: shift_forward}"),
                 {"v": "2026-03-08 02:30:00"}) == "2026-03-08T07:30:00.000Z"
    assert value(dt("{" + ny + ", on_nonexistent: shift_backward}"),
                 {"v": "2026-03-08 02:30:00"}) == "2026-03-08T06:30:00.000Z"
    rejected(dt("{" + ny + "}"), {"v": "2026-11-01 01:30:00"}, "happens twice")
    assert value(dt("{" + ny + ", on_ambiguous: earlier}"), {"v": "2026-11-01 01:30:00"}) == "2026-11-01T05:30:00.000Z"
    assert value(dt("{" + ny + ", on_ambiguous: later}"), {"v": "2026-11-01 01:30:00"}) == "2026-11-01T06:30:00.000Z"


# --- value maps and lookups ------------------------------------------------------------------------

def test_value_map_keys_are_the_text_written() -> None:
    p = plan("""fields:
  x:
    from: v
    map:
      values: {010: ten, 0755: shenzhen, 1.10: v110, true: yes-flag, '07': quoted}
      on_unknown: pass
""")
    assert value(p, {"v": "010"}) == "ten"  # was passed through unmapped (key read as 10)
    assert value(p, {"v": "0755"}) == "shenzhen"
    assert value(p, {"v": "1.10"}) == "v110"
    assert value(p, {"v": True}) == "yes-flag"  # the README's own example: key `true`
    assert value(p, {"v": "07"}) == "quoted"
    assert value(p, {"v": 10}) == 10  # 10 is not the code "010": passed, not mapped
    block = plan("fields:\n  x:\n    from: v\n    map:\n      values:\n        010: ten\n        13: thirteen\n")
    assert value(block, {"v": "010"}) == "ten"
    assert value(block, {"v": 13}) == "thirteen"


def test_empty_lookup_cell_follows_on_missing(tmp_path: Path) -> None:
    (tmp_path / "codes.csv").write_text("crm,erp\nA,1\nB,\n", encoding="utf-8")
    strict = plan("fields:\n  x: {from: v, lookup: {table: codes}}\n", lookups_dir=tmp_path)
    rejected(strict, {"v": "B"}, "empty 'erp' cell")  # was ""
    assert value(strict, {"v": "A"}) == "1"
    lenient = plan("fields:\n  x: {from: v, lookup: {table: codes, on_missing: default, default: Z}}\n",
                   lookups_dir=tmp_path)
    assert value(lenient, {"v": "B"}) == "Z"


# --- filters fail loudly (issue 10 item 9) -------------------------------------------------------

WON = """filter:
  - {path: stage, eq: won}
  - {path: amount, gt: 0}
fields:
  x: amount
"""


@pytest.mark.parametrize("amount", ["abc", None, "", [1], True, float("nan")])
def test_a_filter_that_cannot_evaluate_rejects(amount: Any) -> None:
    out = plan(WON).apply({"stage": "won", "amount": amount})  # was Skipped: never reached the ERP
    assert isinstance(out, Rejected), out
    assert out.field == "amount" and out.code == "condition"
    assert "cannot be evaluated" in out.reason


def test_a_filter_with_a_clean_answer_skips_or_passes() -> None:
    assert isinstance(plan(WON).apply({"stage": "won", "amount": "1,234.00"}), Mapped)  # was skipped
    assert isinstance(plan(WON).apply({"stage": "won", "amount": 0}), Skipped)
    assert isinstance(plan(WON).apply({"stage": "lost", "amount": "abc"}), Skipped)  # first filter said no


def test_when_and_line_filters_that_cannot_evaluate_reject_at_the_field() -> None:
    p = plan("""fields:
  x: {from: v, when: {path: amount, gte: 10}}
  lines:
    from: items
    each:
      filter: {path: qty, gt: 0}
      fields:
        q: qty
""")
    rejected(p, {"v": 1, "amount": "ten", "items": []}, "amount is 'ten', not a number")
    out = p.apply({"v": 1, "amount": 12, "items": [{"qty": 1}, {"qty": "x"}]})
    assert isinstance(out, Rejected) and out.field == "lines[1]", out


# --- never a traceback -----------------------------------------------------------------------------

def test_deep_and_odd_inputs_are_a_record_or_a_rejection() -> None:
    p = plan("fields:\n  x: v\n  y: {from: v, transforms: [to_str]}\n")
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    out = p.apply({"v": deep})
    assert isinstance(out, Rejected)
    out = p.apply({"v": "\ud800"})  # a lone surrogate
    assert isinstance(out, Mapped | Rejected)


def test_compiler_never_raises_a_traceback_on_deep_yaml() -> None:
    from erphub.core.errors import MappingError

    with pytest.raises(MappingError):
        compile_text(HEAD + "fields:\n  x: {const: " + "[" * 300 + "]" * 300 + "}\n", file="deep.yaml")


def test_mapping_test_on_deep_json_and_lone_surrogates(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from erphub.cli.mapping import mapping_app

    mapping = tmp_path / "m.yaml"
    mapping.write_text(HEAD + "key: code\nfields:\n  code: {from: code, validate: {regex: '[A-Z]+'}}\n  n: name\n",
                       encoding="utf-8")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    result = CliRunner().invoke(mapping_app, ["test", str(mapping), "--input", str(deep)])
    assert result.exit_code == 2 and "nested too deeply" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    odd = tmp_path / "odd.json"
    odd.write_text('[{"code": "ABC", "name": "\\ud800"}, {"code": "\\udfff", "name": "x"}]', encoding="utf-8")
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(mapping_app, ["test", str(mapping), "--input", str(odd), *extra])
        assert result.exit_code == 0, result.output
        assert "\\ud800" in result.output
    strict = CliRunner().invoke(mapping_app, ["test", str(mapping), "--input", str(odd), "--strict"])
    assert strict.exit_code == 1 and "1 rejected" in strict.output
