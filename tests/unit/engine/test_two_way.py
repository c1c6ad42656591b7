"""Two-way customers between two systems: ownership, echo suppression, conflicts, settling to zero writes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from erphub.config.loader import load_config
from erphub.connectors.memory import MemorySystem, memory_system
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from erphub.store import Conflict
from tests.unit.engine.configs import TWO_WAY_DIRECTIONS, two_way_config


def make_hub(tmp_path: Path, tag: str, rule: str, owner: str = "crm") -> Hub:
    return Hub(load_config(two_way_config(tmp_path, tag, rule, owner)))


def writes(hub: Hub) -> int:
    total = 0
    for name in TWO_WAY_DIRECTIONS:
        counts = run_pipeline(hub.pipeline(name), hub.store).counts
        total += counts["created"] + counts["updated"]
    return total


def by_code(system: MemorySystem, key: str) -> dict[str, dict]:
    return {str(r.data[key]): r.data for r in system.all("customer")}


def test_ten_rounds_with_changes_on_both_sides_settle_to_zero_writes(tmp_path: Path) -> None:
    crm, erp = memory_system("crm-ten"), memory_system("erp-ten")
    for i in range(12):
        crm.put("customer", {"code": f"C{i:02d}", "name": f"客户{i}", "phone": f"1380000{i:04d}"})
    hub = make_hub(tmp_path, "ten", "newest_wins")
    rng = random.Random(7)
    expected_phone: dict[str, str] = {}
    try:
        assert writes(hub) >= 12  # first round: created in the ERP, credit/phone round-trip settles
        for round_no in range(10):
            crm_records = crm.all("customer")
            erp_records = {r.data["number"]: r for r in erp.all("customer")}
            for record in rng.sample(crm_records, 3):   # the CRM owns names
                crm.put("customer", {**record.data, "name": f"{record.data['code']} 第{round_no}轮"},
                        record_id=record.id)
            for number in rng.sample(sorted(erp_records), 3):  # the ERP owns credit limits
                record = erp.records["customer"][erp_records[number].id]
                erp.put("customer", {**record.data, "credit_limit": 1000 * (round_no + 1)}, record_id=record.id)
            code = f"C{rng.randrange(12):02d}"              # phone is two-way: newest change wins
            if round_no % 2:
                record = next(r for r in crm.all("customer") if r.data["code"] == code)
                crm.put("customer", {**record.data, "phone": f"1390000{round_no:04d}"}, record_id=record.id)
            else:
                record = next(r for r in erp.all("customer") if r.data["number"] == code)
                erp.put("customer", {**record.data, "phone": f"1370000{round_no:04d}"}, record_id=record.id)
            expected_phone[code] = f"1390000{round_no:04d}" if round_no % 2 else f"1370000{round_no:04d}"
            assert writes(hub) > 0
        assert writes(hub) == 0, "a quiet round must write nothing"
        assert writes(hub) == 0

        crm_by, erp_by = by_code(crm, "code"), by_code(erp, "number")
        assert len(crm_by) == len(erp_by) == 12, "no record was duplicated on either side"
        for code, crm_row in crm_by.items():
            erp_row = erp_by[code]
            assert erp_row["name"] == crm_row["name"]                        # owner: CRM
            assert crm_row.get("credit_limit") == erp_row.get("credit_limit")  # owner: ERP
            assert crm_row["phone"] == erp_row["phone"]
        for code, phone in expected_phone.items():
            assert crm_by[code]["phone"] == phone
    finally:
        hub.close()


def test_a_field_changed_on_both_sides_is_held_for_review_with_both_values(tmp_path: Path) -> None:
    crm, erp = memory_system("crm-hold"), memory_system("erp-hold")
    crm.put("customer", {"code": "C01", "name": "甲", "phone": "13800000001"})
    hub = make_hub(tmp_path, "hold", "hold")
    try:
        writes(hub)
        crm_rec = crm.all("customer")[0]
        erp_rec = erp.all("customer")[0]
        crm.put("customer", {**crm_rec.data, "phone": "13911111111"}, record_id=crm_rec.id)
        erp.put("customer", {**erp_rec.data, "phone": "13722222222"}, record_id=erp_rec.id)
        writes(hub)
        writes(hub)
        held = hub.store.list_conflicts(status="held")
        assert [(c.field, c.source_value, c.target_value) for c in held] == [("phone", "13911111111", "13722222222")]
        assert crm.all("customer")[0].data["phone"] == "13911111111"   # neither side overwritten
        assert erp.all("customer")[0].data["phone"] == "13722222222"
    finally:
        hub.close()


@pytest.mark.parametrize(("owner", "winner_phone"), [("crm", "13911111111"), ("erp", "13722222222")])
def test_owner_wins_keeps_the_owner_systems_value(tmp_path: Path, owner: str, winner_phone: str) -> None:
    crm, erp = memory_system(f"crm-owner-{owner}"), memory_system(f"erp-owner-{owner}")
    crm.put("customer", {"code": "C01", "name": "甲", "phone": "13800000001"})
    hub = make_hub(tmp_path, f"owner-{owner}", "owner_wins", owner)
    try:
        writes(hub)
        crm_rec, erp_rec = crm.all("customer")[0], erp.all("customer")[0]
        crm.put("customer", {**crm_rec.data, "phone": "13911111111"}, record_id=crm_rec.id)
        erp.put("customer", {**erp_rec.data, "phone": "13722222222"}, record_id=erp_rec.id)
        writes(hub)
        writes(hub)
        assert writes(hub) == 0
        assert crm.all("customer")[0].data["phone"] == winner_phone
        assert erp.all("customer")[0].data["phone"] == winner_phone
        resolved = hub.store.list_conflicts(status="resolved")
        assert resolved and resolved[0].field == "phone"
    finally:
        hub.close()


def held_conflict(tmp_path: Path, tag: str) -> tuple[Hub, MemorySystem, MemorySystem, Conflict]:
    """A customer whose phone both sides changed since the last round: one conflict held (rule `hold`)."""
    crm, erp = memory_system(f"crm-{tag}"), memory_system(f"erp-{tag}")
    crm.put("customer", {"code": "C01", "name": "甲", "phone": "13800000001"})
    hub = make_hub(tmp_path, tag, "hold")
    writes(hub)
    crm_rec, erp_rec = crm.all("customer")[0], erp.all("customer")[0]
    crm.put("customer", {**crm_rec.data, "phone": "13911111111"}, record_id=crm_rec.id)
    erp.put("customer", {**erp_rec.data, "phone": "13722222222"}, record_id=erp_rec.id)
    writes(hub)
    [held] = hub.store.list_conflicts(status="held")
    return hub, crm, erp, held


def test_a_held_conflict_is_resolved_by_a_person_and_both_sides_then_agree(tmp_path: Path) -> None:
    from erphub.conflicts import resolve_conflict

    hub, crm, erp, held = held_conflict(tmp_path, "resolve")
    try:
        resolve_conflict(hub, held.id, "target")
        writes(hub)
        assert crm.all("customer")[0].data["phone"] == erp.all("customer")[0].data["phone"] == "13722222222"
        assert hub.store.list_conflicts(status="held") == []
        assert writes(hub) == 0
    finally:
        hub.close()


def test_a_conflict_is_resolved_only_while_neither_direction_runs(tmp_path: Path) -> None:
    """Resolving holds both directions' leases: under another run of the reverse direction it writes
    nothing (PipelineBusy after the wait), once that run is over it resolves."""
    from erphub.conflicts import resolve_conflict
    from erphub.core.errors import PipelineBusy
    from erphub.store.leases import owner_name

    hub, crm, _erp, held = held_conflict(tmp_path, "resolve-busy")
    try:
        for name in TWO_WAY_DIRECTIONS:
            hub.pipeline(name).lease_wait_s = 0.3
        reverse = next(name for name in TWO_WAY_DIRECTIONS if name != held.pipeline)
        other = owner_name("a-run")
        assert hub.store.acquire_lease(reverse, other, ttl_s=60) is None
        with pytest.raises(PipelineBusy, match="busy"):
            resolve_conflict(hub, held.id, "target")
        assert crm.all("customer")[0].data["phone"] == "13911111111"  # the CRM's own record: not written
        assert [c.id for c in hub.store.list_conflicts(status="held")] == [held.id]
        hub.store.release_lease(reverse, other)
        resolve_conflict(hub, held.id, "target")
        assert crm.all("customer")[0].data["phone"] == "13722222222"
    finally:
        hub.close()


def test_reconcile_reports_a_two_way_field_the_sides_disagree_on_and_repair_applies_it(tmp_path: Path) -> None:
    from erphub.reconcile import reconcile

    hub = make_hub(tmp_path, "tw-reconcile", "newest_wins")
    crm, erp = memory_system("crm-tw-reconcile"), memory_system("erp-tw-reconcile")
    record = crm.put("customer", {"code": "C1", "name": "Acme", "phone": "111"})
    writes(hub)
    crm.put("customer", {"code": "C1", "name": "Acme", "phone": "222"}, record_id=record.id)
    found = reconcile(hub.pipeline("crm_to_erp"), hub.store)
    assert [(i.key, i.kind, i.fields) for i in found.items] == [("C1", "different", ("phone",))]
    repaired = reconcile(hub.pipeline("crm_to_erp"), hub.store, repair=True)
    assert repaired.repaired == 1 and repaired.left == []
    assert by_code(erp, "number")["C1"]["phone"] == "222"
    hub.close()
