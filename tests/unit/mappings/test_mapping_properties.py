"""Property: for any JSON input a compiled plan returns Mapped, Rejected or Skipped; it never raises."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erphub.core.errors import MappingError, TransformError
from erphub.core.records import canonical_json
from erphub.mappings import Mapped, Rejected, Skipped, compile_mapping, compile_text
from erphub.mappings.numbers import parse_text, plain

HEAD_ANY = "source: any\ntarget: any\n"

ROOT = Path(__file__).resolve().parents[3] / "mappings"
SHIPPED = {
    "customer": compile_mapping(ROOT / "jiandaoyun_to_kingdee/customer.yaml"),
    "sales_order": compile_mapping(ROOT / "jiandaoyun_to_kingdee/sales_order.yaml"),
    "receipt": compile_mapping(ROOT / "kingdee_to_jiandaoyun/receipt.yaml"),
}
# One plan that uses every transform at least once, so each meets hostile values.
KITCHEN_SINK = compile_text(
    """
source: any
target: any
filter: {any: [{path: a, present: true}, {path: n, gte: 0}, {not: {path: s, matches: '^x'}}]}
fields:
  t1: {from: a, transforms: [halfwidth, trim, collapse_spaces, upper, lower, {truncate: 5}, blank_to_null]}
  t2: {from: a, transforms: [{replace: {old: a, new: b}}, {regex_replace: {pattern: '\\d', repl: '#'}}]}
  t3:
    from: a
    transforms: [{regex_extract: {pattern: '(\\w+)', group: 1, on_nomatch: null}}, {split: ' '}, {join: '-'}]
  n1: {from: n, transforms: [to_decimal, {round: {places: 2, mode: half_even}}, {multiply: 3}, to_str]}
  n2: {from: n, transforms: [to_int, to_float]}
  n3: {from: n, transforms: [{money: CNY}]}
  b: {from: b, transforms: [to_bool]}
  l1: {from: "xs[*]", transforms: [sum]}
  l2: {from: xs, transforms: [first, last, count]}
  d1: {from: d, transforms: [{datetime: {from: iso8601, to: kingdee}}]}
  d2: {from: d, transforms: [{datetime: {from: epoch_ms, to: iso8601}}]}
  d3: {from: d, transforms: [{datetime: {from: kingdee, to: epoch_s}}]}
  p: {from: a, transforms: [phone]}
  u: {from: a, transforms: [uscc]}
  m: {from: s, map: {values: {x: y}, on_unknown: error}}
  k: {from: s, lookup: {table: units}}
  dft: {from: s, transforms: [{default: 0}]}
  tpl: {template: "{a}/{n:.2f}/{xs[0]}"}
  co: {coalesce: [s, a, n]}
  w: {from: a, when: {all: [{path: n, lt: 5}, {path: s, in: [p, q]}]}}
  v: {from: s, validate: {type: string, regex: '[a-z]+', length: {max: 3}, one_of: [ab, abc]}}
  r: {from: n, validate: {range: {min: 0, lt: 10}}}
  rows:
    from: xs
    each:
      filter: {path: q, gt: 0}
      fields:
        q: {from: q, transforms: [to_decimal], validate: {required: true}}
        root: $.s
""",
    file="kitchen_sink.yaml",
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            " ",
            "１２",
            "P-1001",
            "个",
            "2026-02-29T00:00:00Z",
            "1.5",
            "+86 13812345678",
            "91350100M000100Y43",
            "正式",
            "C",
            "CNY",
            "PRE001",
            "x",
        ]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def keyed(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Records with the real field names and arbitrary values: reaches deep into each mapping."""
    return st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys))


CUSTOMER_KEYS = [
    "customer_code",
    "customer_name",
    "short_name",
    "credit_code",
    "phone",
    "address",
    "customer_group",
    "salesperson",
    "currency",
    "status",
]
ORDER_KEYS = ["order_no", "customer_code", "order_date", "currency", "salesperson", "remark", "lines"]
LINE_KEYS = ["sku", "qty", "unit", "price", "tax_rate", "amount"]
RECEIPT_KEYS = ["FBillNo", "FDATE", "FCONTACTUNIT", "FCURRENCYID", "FDOCUMENTSTATUS", "FRECEIVEBILLENTRY"]
SINK_KEYS = ["a", "n", "b", "xs", "d", "s"]


def check(plan: Any, record: Any) -> None:
    outcome = plan.apply(record)
    assert isinstance(outcome, Mapped | Rejected | Skipped)
    if isinstance(outcome, Mapped):
        canonical_json(outcome.data)  # the engine can hash whatever comes out
    if isinstance(outcome, Rejected):
        assert outcome.code != "internal", outcome


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(json_values)
def test_any_json_never_raises(record: Any) -> None:
    for plan in (*SHIPPED.values(), KITCHEN_SINK):
        check(plan, record)


@FAST
@given(keyed(CUSTOMER_KEYS).map(lambda r: {**r, "status": "正式"}))
def test_customer_shaped_records(record: dict[str, Any]) -> None:
    check(SHIPPED["customer"], record)


@FAST
@given(keyed(ORDER_KEYS), st.lists(keyed(LINE_KEYS), max_size=3))
def test_order_shaped_records(record: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    check(SHIPPED["sales_order"], record)
    check(SHIPPED["sales_order"], {**record, "lines": lines})


@FAST
@given(keyed(RECEIPT_KEYS).map(lambda r: {**r, "FDOCUMENTSTATUS": "C"}))
def test_receipt_shaped_records(record: dict[str, Any]) -> None:
    check(SHIPPED["receipt"], record)


@FAST
@given(keyed(SINK_KEYS))
def test_every_transform_on_hostile_values(record: dict[str, Any]) -> None:
    check(KITCHEN_SINK, record)


# --- issue 11: expressions, number grammar and calendar dates ----------------------------------------

QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXPRESSIONS = compile_text(
    """
source: any
target: any
filter: "n == null or n != 'zzz'"
let:
  half: "n / 2"
fields:
  e1: {expr: "round(half * 3 + 1, 2)"}
  e2: {expr: "if n > 0 then upper(text(a)) & '!' else coalesce(s, 'none')"}
  e3: {expr: "add_days(date(d), 30)"}
  e4: {expr: "sum(xs[*]) + count(xs) - max(xs[*]) * min(xs[*])"}
  e5: {expr: "distinct(xs[*])"}
  e6: {expr: "group_sum(xs, 'k', 'v')"}
  e7: {expr: "money(n, s)"}
  e8: {expr: "lookup('units', 'kingdee_unit', 'crm_unit', s)"}
  e9: {expr: "substr(trim(a), 0, 3) & pad_left(n, 5, '0')"}
  e10: {expr: "target.e1 * 2"}
  e11:
    cases:
      - {if: "n >= 100", then: big}
      - {if: "contains(a, 'x')", then: {expr: "len(a)"}}
      - {else: small}
""",
    file="expressions.yaml",
)


def check_json(plan: Any, record: Any) -> None:
    check(plan, record)
    outcome = plan.apply(record)
    if isinstance(outcome, Mapped):  # nothing non-finite ever comes out (it would be invalid JSON)
        json.dumps(outcome.data, default=str, allow_nan=False)


hostile = json_values | st.sampled_from([float("nan"), float("inf"), "\ud800", "1,234.5", "12,50", "1,2,3",
                                        "１２，５０", "NaN", "-0.001", "2026-03-08 02:30:00"])


@QUICK
@given(st.dictionaries(st.sampled_from(SINK_KEYS), hostile, max_size=len(SINK_KEYS)))
def test_expressions_never_raise_and_never_write_nan(record: dict[str, Any]) -> None:
    for plan in (EXPRESSIONS, KITCHEN_SINK, *SHIPPED.values()):
        check_json(plan, record)


decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=-10**15, max_value=10**15, places=4)


@QUICK
@given(decimals)
def test_number_parsing_keeps_the_magnitude(value: Decimal) -> None:
    """Whatever form the number is written in, reading it back gives the same Decimal."""
    for text, mark in ((plain(value), "point"), (f"{value:,}", "point"),
                       (f"{value:,}".replace(",", "_").replace(".", ",").replace("_", "."), "comma"),
                       (plain(value).replace(".", ","), "comma")):
        assert parse_text(text, mark) == value, text  # type: ignore[arg-type]


@QUICK
@given(st.text(alphabet="0123456789,.-", min_size=1, max_size=12))
def test_accepted_number_text_is_never_a_different_magnitude(text: str) -> None:
    try:
        value = parse_text(text, "point")
    except TransformError:
        return  # refused: the author hears about it
    assert value == Decimal(text.replace(",", ""))  # commas only ever grouped digits
    assert parse_text(plain(value)) == value


zones = st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"])


@QUICK
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)), zones)
def test_date_conversions_without_a_zone_change_keep_the_date(moment: datetime, tz: str) -> None:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    p = compile_text(HEAD_ANY + f"fields:\n  d: {{from: v, transforms: [{{datetime: {{from: kingdee, to: date, "
                                f"from_tz: {tz}, on_nonexistent: shift_forward, on_ambiguous: earlier}}}}]}}\n"
                                f"  p: {{from: v, transforms: [{{datetime: {{from: kingdee, to: '%d.%m.%Y'}}}}]}}\n"
                                f"  k: {{from: day, transforms: [{{datetime: {{from: date, to: kingdee}}}}]}}\n",
                     file="d.yaml")
    outcome = p.apply({"v": text, "day": moment.date().isoformat()})
    assert isinstance(outcome, Mapped), outcome
    assert outcome.data["p"] == moment.strftime("%d.%m.%Y")
    assert outcome.data["k"] == moment.date().isoformat() + " 00:00:00"
    # with from_tz only a DST gap may move the wall time, and only forward by the gap (< 1 day)
    assert outcome.data["d"] in (moment.date().isoformat(), (moment + timedelta(hours=2)).date().isoformat())


PIECES = ["source: a\n", "target: b\n", "fields:\n", "  x: ", "{expr: ", '"', "'", "qty", " * ", "(", ")", "round(",
          ", ", "2", "}", "\n", "  y:\n    cases:\n", "      - {if: ", "then: ", "else: ", "let:\n  n: ", "params: ",
          "{a: 1}", "[", "]", "${param:a}", "map: {values: {010: a}}", "lookup: units", "when: ", "filter: ",
          "decimal: comma\n", "null", "true", ".nan", "{const: .inf}", "  z: {from: a, transforms: [", "money",
          "]}", "each:\n", "      fields:\n", "target.", "$.", "&", ":", "-", "?", "!!python/object", "\ud800"]


@QUICK
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=25))
def test_the_compiler_answers_any_text_with_a_plan_or_a_mapping_error(pieces: list[str]) -> None:
    try:
        compile_text("".join(pieces), file="fuzz.yaml")
    except MappingError as exc:
        assert exc.render().startswith("fuzz.yaml")
