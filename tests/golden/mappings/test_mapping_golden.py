"""Golden files: the shipped mappings applied to the sample records kept in mappings/samples/.

A change to a shipped mapping or a transform that alters any output shows up here as a diff.
After an intended change, regenerate with `ERPHUB_UPDATE_GOLDEN=1 pytest tests/golden/mappings` and
review the diff of the .golden.json files like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from erphub.mappings import compile_mapping
from erphub.mappings.report import dumps, outcome_dict, unwrap_record

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
CASES = {
    "customer": ("mappings/jiandaoyun_to_kingdee/customer.yaml", "mappings/samples/jiandaoyun_customers.json"),
    "sales_order": (
        "mappings/jiandaoyun_to_kingdee/sales_order.yaml",
        "mappings/samples/jiandaoyun_sales_orders.json",
    ),
    "receipt": ("mappings/kingdee_to_jiandaoyun/receipt.yaml", "mappings/samples/kingdee_receipts.json"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_mapping_matches_golden(name: str) -> None:
    mapping, samples = CASES[name]
    plan = compile_mapping(ROOT / mapping)
    records = json.loads((ROOT / samples).read_text(encoding="utf-8"))
    results = []
    for item in records:
        label, data = unwrap_record(item)
        results.append({"id": label, **outcome_dict(plan.apply(data))})
    actual = dumps(results) + "\n"
    golden = HERE / f"{name}.golden.json"
    if os.environ.get("ERPHUB_UPDATE_GOLDEN") == "1":
        golden.write_text(actual, encoding="utf-8")
    assert golden.is_file(), f"missing {golden}; run with ERPHUB_UPDATE_GOLDEN=1 once and review it"
    assert actual == golden.read_text(encoding="utf-8")
    # every sample file shows both sides: records that map and records that are refused
    outcomes = {r["outcome"] for r in results}
    assert {"mapped", "rejected"} <= outcomes
