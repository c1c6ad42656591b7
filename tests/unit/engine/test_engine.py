"""The engine over in-memory connectors, on SQLite and PostgreSQL stores."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, MemorySystem
from erphub.core.errors import RunFailed
from erphub.engine import Pipeline, replay_dead_letters, run_pipeline
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.store import Store
from erphub.store.models import BatchCommit, LinkUpdate

SECRET = "canary-secret-5f2b9c"


class CustomerPlan:
    """A hand-written plan: the engine must not care how a plan was made."""

    key_field = "number"
    owned_fields = frozenset({"number", "name"})

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped:
        if record.get("status") == "lead":
            return Skipped("only customers move")
        if not record.get("name"):
            return Rejected(field="name", reason="required field is empty", code="required")
        return Mapped({"number": record["code"], "name": record["name"].strip()}, key=record["code"])


def make_pipeline(systems: tuple[MemorySystem, MemorySystem], request: pytest.FixtureRequest, *,
                  page_size: int = 100, batch_size: int = 100) -> Pipeline:
    tag = request.node.name
    crm = MemoryConnector(MemorySettings(system=f"crm-{tag}", entities={"customer": "code"}), SystemContext(name="crm"))
    erp = MemoryConnector(MemorySettings(system=f"erp-{tag}", entities={"customer": "number"}),
                          SystemContext(name="erp"))
    return Pipeline(name="customers", source_system="crm", source_entity="customer", source=crm,
                    target_system="erp", target_entity="customer", target=erp, plan=CustomerPlan(),
                    page_size=page_size, batch_size=batch_size,
                    redact=lambda text: text.replace(SECRET, "***"))


def seed_customers(crm: MemorySystem, n: int, *, at: datetime | None = None) -> None:
    for i in range(n):
        crm.put("customer", {"code": f"C{i:04d}", "name": f"客户 {i}", "status": "customer"}, updated_at=at)


def test_first_run_creates_second_moves_nothing_then_only_changes(store: Store, systems, request) -> None:
    crm, erp = systems
    seed_customers(crm, 25)
    pipeline = make_pipeline(systems, request, page_size=10, batch_size=4)

    first = run_pipeline(pipeline, store)
    assert first.status == "success"
    assert first.counts["read"] == 25 and first.counts["created"] == 25
    assert len(erp.all("customer")) == 25

    second = run_pipeline(pipeline, store)
    assert second.counts["read"] == 0 and second.counts["created"] == 0

    changed = crm.all("customer")[3]
    crm.put("customer", {**changed.data, "name": "改名 有限公司"}, record_id=changed.id)
    third = run_pipeline(pipeline, store)
    assert (third.counts["read"], third.counts["updated"], third.counts["created"]) == (1, 1, 0)
    assert any(r.data["name"] == "改名 有限公司" for r in erp.all("customer"))

    # Touched in the source but nothing we map changed: read, found unchanged, not written.
    same = crm.all("customer")[5]
    crm.put("customer", dict(same.data), record_id=same.id)
    writes_before = erp.write_calls
    fourth = run_pipeline(pipeline, store)
    assert (fourth.counts["read"], fourth.counts["unchanged"]) == (1, 1)
    assert erp.write_calls == writes_before


def test_records_sharing_a_timestamp_across_page_boundaries_are_read_once(store: Store, systems, request) -> None:
    crm, erp = systems
    same_moment = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    seed_customers(crm, 23, at=same_moment)
    pipeline = make_pipeline(systems, request, page_size=5)
    info = run_pipeline(pipeline, store)
    assert info.counts["read"] == 23 and info.counts["created"] == 23
    assert store.get_cursor("customers").updated_at == same_moment
    # A record arriving later with the very same timestamp but a larger id is still picked up.
    crm.put("customer", {"code": "C9999", "name": "迟到", "status": "customer"}, record_id="zzz-last",
            updated_at=same_moment)
    again = run_pipeline(pipeline, store)
    assert (again.counts["read"], again.counts["created"]) == (1, 1)
    assert sorted(r.data["number"] for r in erp.all("customer")) == sorted(
        [f"C{i:04d}" for i in range(23)] + ["C9999"])


def test_rejected_and_refused_records_go_to_dead_letters_and_the_batch_goes_on(store: Store, systems, request):
    crm, erp = systems
    seed_customers(crm, 6)
    crm.put("customer", {"code": "C0100", "name": "", "status": "customer"})      # mapping rejects
    crm.put("customer", {"code": "C0101", "name": "线索", "status": "lead"})       # filtered
    crm.put("customer", {"code": "C0102", "name": "坏 " + SECRET, "status": "customer"})
    erp.validators["customer"] = lambda data: (f"name rejected: {data['name']}" if "坏" in data["name"] else None)
    pipeline = make_pipeline(systems, request, batch_size=3)

    info = run_pipeline(pipeline, store)
    assert info.status == "success"
    assert info.counts == {"read": 9, "created": 6, "updated": 0, "unchanged": 0, "skipped": 1, "dead_lettered": 2}
    letters = {d.source_id: d for d in store.list_dead_letters(pipeline="customers")}
    assert len(letters) == 2
    mapped_fail = next(d for d in letters.values() if d.stage == "map")
    assert (mapped_fail.field, mapped_fail.error_code, mapped_fail.mapped_payload) == ("name", "required", None)
    assert mapped_fail.source_payload["code"] == "C0100"
    write_fail = next(d for d in letters.values() if d.stage == "write")
    assert write_fail.mapped_payload == {"number": "C0102", "name": "坏 " + SECRET}
    assert SECRET not in write_fail.message and "***" in write_fail.message
    assert write_fail.error_class == "TargetRejected"

    # Fixed on the target side, a replay delivers it and closes the dead letter.
    erp.validators.pop("customer")
    replay = replay_dead_letters(pipeline, store, [write_fail.id])
    assert replay.counts["created"] == 1
    assert store.get_dead_letter(write_fail.id).status == "replayed"
    # The mapping rejection stays open until its source is fixed; then a normal run resolves it.
    assert [d.source_id for d in store.list_dead_letters(pipeline="customers")] == [mapped_fail.source_id]
    crm.put("customer", {"code": "C0100", "name": "补全", "status": "customer"}, record_id=mapped_fail.source_id)
    run_pipeline(pipeline, store)
    assert store.list_dead_letters(pipeline="customers") == []
    assert store.get_dead_letter(mapped_fail.id).status == "resolved"


def test_repeat_failure_keeps_one_dead_letter_and_counts_attempts(store: Store, systems, request) -> None:
    crm, _ = systems
    record = crm.put("customer", {"code": "C1", "name": "", "status": "customer"})
    pipeline = make_pipeline(systems, request)
    run_pipeline(pipeline, store)
    crm.put("customer", {"code": "C1", "name": "", "status": "customer", "note": "x"}, record_id=record.id)
    run_pipeline(pipeline, store)
    letters = store.list_dead_letters(pipeline="customers")
    assert len(letters) == 1 and letters[0].attempts == 2


def test_target_down_fails_the_run_without_moving_the_cursor_or_losing_records(store: Store, systems, request):
    crm, erp = systems
    seed_customers(crm, 12)
    pipeline = make_pipeline(systems, request, page_size=5)
    run_pipeline(pipeline, store)
    cursor = store.get_cursor("customers")
    seed_customers_extra = [crm.put("customer", {"code": f"N{i}", "name": f"新 {i}", "status": "customer"})
                            for i in range(7)]
    erp.down = True
    with pytest.raises(RunFailed):
        run_pipeline(pipeline, store)
    assert store.get_cursor("customers") == cursor
    assert store.recent_runs("customers", 1)[0].status == "failed"
    assert store.list_dead_letters(pipeline="customers") == []
    erp.down = False
    info = run_pipeline(pipeline, store)
    assert info.counts["created"] == len(seed_customers_extra)
    assert len(erp.all("customer")) == 19


def test_a_create_that_landed_before_a_crash_is_recovered_not_duplicated(store: Store, systems, request) -> None:
    crm, erp = systems
    record = crm.put("customer", {"code": "C0042", "name": "崩溃前", "status": "customer"})
    pipeline = make_pipeline(systems, request)
    # What a crash leaves: the target accepted the create, our commit never ran (no link at all).
    landed = erp.put("customer", {"number": "C0042", "name": "崩溃前"})
    info = run_pipeline(pipeline, store)
    assert (info.counts["created"], info.counts["updated"]) == (0, 1)
    assert erp.count_with_key("customer", "C0042") == 1
    assert store.links_for("customers", [record.id])[record.id].target_id == landed.id


def test_a_pending_link_left_by_an_older_version_is_recovered_by_key(store: Store, systems, request) -> None:
    """Older versions committed a `pending` link (no target id) before each create: one a crash left
    behind is looked up by key like any unlinked record, and becomes an ordinary synced link."""
    crm, erp = systems
    record = crm.put("customer", {"code": "C0043", "name": "旧版本", "status": "customer"})
    pipeline = make_pipeline(systems, request)
    store.commit_batch(BatchCommit("customers", "old-run", links=[
        LinkUpdate(record.id, None, "C0043", None, None, state="pending")]), pipeline.endpoints)
    landed = erp.put("customer", {"number": "C0043", "name": "旧版本"})
    info = run_pipeline(pipeline, store)
    assert (info.counts["created"], info.counts["updated"]) == (0, 1)
    assert erp.count_with_key("customer", "C0043") == 1
    link = store.links_for("customers", [record.id])[record.id]
    assert (link.target_id, link.state) == (landed.id, "synced")


def test_backfill_window_does_not_move_the_cursor_back(store: Store, systems, request) -> None:
    crm, _ = systems
    early = datetime(2026, 1, 5, tzinfo=UTC)
    seed_customers(crm, 3, at=early)
    crm.put("customer", {"code": "L1", "name": "晚", "status": "customer"}, updated_at=datetime(2026, 2, 1, tzinfo=UTC))
    pipeline = make_pipeline(systems, request)
    run_pipeline(pipeline, store)
    cursor = store.get_cursor("customers")
    window = run_pipeline(pipeline, store, since=datetime(2026, 1, 1, tzinfo=UTC),
                          until=datetime(2026, 1, 10, tzinfo=UTC))
    assert (window.counts["read"], window.counts["unchanged"]) == (3, 3)
    assert store.get_cursor("customers") == cursor
    full = run_pipeline(pipeline, store, full=True)
    assert (full.counts["read"], full.counts["unchanged"], full.counts["created"]) == (4, 4, 0)


def test_importing_the_engine_pulls_no_prefect() -> None:
    code = "import sys, erphub.engine, erphub.runtime; print('prefect' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_record_read_twice_in_a_batch_is_decided_by_its_newest_copy(store: Store, systems, request) -> None:
    from erphub.core.records import Record
    from erphub.engine import deliver_records

    _, erp = systems
    pipeline = make_pipeline(systems, request)
    at = datetime(2026, 5, 1, tzinfo=UTC)
    older = Record("r1", at, {"code": "C1", "name": "旧名", "status": "customer"})
    newer = Record("r1", at.replace(minute=5), {"code": "C1", "name": "", "status": "customer"})
    info = deliver_records(pipeline, store, [older, newer])
    assert (info.counts["created"], info.counts["dead_lettered"]) == (0, 1)
    assert erp.all("customer") == []
    assert [d.status for d in store.list_dead_letters(pipeline="customers")] == ["open"]


def test_a_late_older_copy_of_a_record_does_not_overwrite_newer_data(store: Store, systems, request) -> None:
    from erphub.core.records import Record
    from erphub.engine import deliver_records

    _, erp = systems
    pipeline = make_pipeline(systems, request)
    t1, t2 = datetime(2026, 5, 1, 8, tzinfo=UTC), datetime(2026, 5, 1, 9, tzinfo=UTC)
    deliver_records(pipeline, store, [Record("r1", t2, {"code": "C1", "name": "新名", "status": "customer"})])
    late = deliver_records(pipeline, store, [Record("r1", t1, {"code": "C1", "name": "旧名", "status": "customer"})])
    assert (late.counts["updated"], late.counts["unchanged"]) == (0, 1)
    assert [r.data["name"] for r in erp.all("customer")] == ["新名"]


def test_cursors_are_stored_in_utc_whatever_offset_they_came_with(store: Store) -> None:
    from datetime import timedelta, timezone

    from erphub.core.records import Cursor
    from erphub.store import BatchCommit

    shanghai = timezone(timedelta(hours=8))
    store.commit_batch(BatchCommit("p", "run", cursor=Cursor(datetime(2026, 5, 1, 10, tzinfo=shanghai), "x")),
                       ("a", "b", "c", "d"))
    assert store.get_cursor("p") == Cursor(datetime(2026, 5, 1, 2, tzinfo=UTC), "x")
