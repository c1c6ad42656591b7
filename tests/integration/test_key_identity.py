"""Keys are identities: ten pairs of CRM customers whose codes differ only by case or spaces are
twenty different records; the ERP gets one customer per pair, the other is a `key_conflict` dead
letter naming both, and no ERP customer ever carries the other company's name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from erphub import sandbox as sandboxes
from erphub.config.loader import load_config
from erphub.engine import run_pipeline
from erphub.runtime import Hub

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "crm_customers_to_erp"


def customer(code: str, name: str) -> dict[str, Any]:
    return {"customer_code": code, "customer_name": name, "short_name": name[:4], "credit_code": "91350100M000100Y43",
            "phone": "13812345678", "contact_name": "王经理", "email": "wang@example.com",
            "address": {"province": "广东省", "city": "深圳市", "district": "南山区", "detail": "科技园1号"},
            "customer_group": "KA", "salesperson": "S001", "currency": "CNY", "status": "正式",
            "erp_customer_no": "", "account_status": "none", "outstanding_balance": 0}


@pytest.fixture
def hub_and_sandboxes(tmp_path: Path) -> Iterator[tuple[Hub, Any, Any]]:
    text = (ROOT / "config" / "processes.yaml").read_text(encoding="utf-8")
    text = text.replace("../mappings/", f"{ROOT}/mappings/").replace("[demo.env]", f"[{ROOT}/config/demo.env]")
    text = text.replace("sqlite:///../.erphub/processes.db", f"sqlite:///{tmp_path}/state.db")
    (tmp_path / "processes.yaml").write_text(text, encoding="utf-8")
    crm = sandboxes.create("jiandaoyun", seed_data=False)
    erp = sandboxes.create("kingdee", seed_customers=0, seed_receipts=0)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        environ = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        hub = Hub(load_config(tmp_path / "processes.yaml", environ=environ))
        try:
            yield hub, crm, erp
        finally:
            hub.close()


def test_codes_that_differ_by_case_or_spaces_are_never_merged(hub_and_sandboxes) -> None:
    hub, crm, erp = hub_and_sandboxes
    pairs = []
    for i in range(10):
        first, second = f"CUS-K{i:03d}", (f"cus-k{i:03d}" if i % 2 else f" CUS-K{i:03d} ")
        a = crm.state.insert_plain("customer_form", customer(first, f"甲公司{i}"))
        b = crm.state.insert_plain("customer_form", customer(second, f"乙公司{i}"))
        pairs.append((first, a, b))
    pipeline = hub.pipeline(PIPELINE)
    first_run = run_pipeline(pipeline, hub.store)
    # Half the pairs arrive in a later batch than their first record (a later run, after edits).
    later = run_pipeline(pipeline, hub.store)
    for _first, _a, b in pairs:
        crm.state.touch("customer_form", [b], changes={"phone": "13900000000"})
    third = run_pipeline(pipeline, hub.store)

    store = erp.state.store
    names = {}
    for first, _a, _b in pairs:
        doc = store.by_number("BD_Customer", first)
        assert doc is not None, first
        names[first] = store.to_model("BD_Customer", doc)["FName"]
    assert sorted(names.values()) == sorted(f"甲公司{i}" for i in range(10)), names
    assert store.count_number("BD_Customer", "CUS-K000") == 1
    letters = hub.store.list_dead_letters(pipeline=PIPELINE)
    conflicts = [letter for letter in letters if letter.error_code == "key_conflict"]
    assert sorted(letter.source_id for letter in conflicts) == sorted(b for _f, _a, b in pairs)
    for letter in conflicts:
        other = next(a for _f, a, b in pairs if b == letter.source_id)
        assert other in letter.message and letter.source_id in letter.message
    assert first_run.counts["created"] == 10 and third.counts["updated"] == 0, (first_run.counts, later.counts)
