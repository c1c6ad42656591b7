"""Property: for any JSON input a compiled plan returns Mapped, Rejected or Skipped; it never raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erphub.core.records import canonical_json
from erphub.mappings import Mapped, Rejected, Skipped, compile_mapping, compile_text

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
