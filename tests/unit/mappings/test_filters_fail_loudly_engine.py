"""Issue 10 item 9 through the engine: a won order whose amount a filter cannot read is a dead letter
naming the field, never a silent skip; the target holds exactly the orders that should move."""

from __future__ import annotations

import pytest

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.engine import Pipeline, run_pipeline
from erphub.mappings import compile_text
from erphub.store import Store

MAPPING = """source: order
target: order
key: number
filter:
  - {path: stage, eq: won}
  - {path: amount, gt: 0}
fields:
  number: code
  amount: {from: amount, transforms: [to_decimal]}
"""


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_won_orders_with_unreadable_amounts_are_dead_letters(store: Store, request: pytest.FixtureRequest) -> None:
    tag = request.node.name
    crm, erp = memory_system(f"crm-{tag}"), memory_system(f"erp-{tag}")
    orders = {"O1": "1,234.00", "O2": "abc", "O3": None, "O4": "12,50", "O5": "0", "O6": "88"}
    for code, amount in orders.items():
        crm.put("order", {"code": code, "stage": "won", "amount": amount})
    crm.put("order", {"code": "O7", "stage": "lost", "amount": "abc"})  # a clean "no" at the first filter
    pipeline = Pipeline(
        name="orders", source_system="crm", source_entity="order",
        source=MemoryConnector(MemorySettings(system=f"crm-{tag}", entities={"order": "code"}),
                               SystemContext(name="crm")),
        target_system="erp", target_entity="order",
        target=MemoryConnector(MemorySettings(system=f"erp-{tag}", entities={"order": "number"}),
                               SystemContext(name="erp")),
        plan=compile_text(MAPPING, file="orders.yaml"))
    run_pipeline(pipeline, store)
    # the target's own data: the readable positive amounts arrived, exactly
    assert sorted((r.data["number"], str(r.data["amount"])) for r in erp.all("order")) == [
        ("O1", "1234.00"), ("O6", "88")]  # O1 was skipped before: "1,234.00" groups correctly
    letters = {letter.source_payload["code"]: letter for letter in store.list_dead_letters(pipeline="orders")}
    assert sorted(letters) == ["O2", "O3", "O4"]  # were silently skipped before
    assert all(letter.field == "amount" for letter in letters.values())
    assert "amount is 'abc', not a number" in letters["O2"].message
    assert "amount is missing" in letters["O3"].message
