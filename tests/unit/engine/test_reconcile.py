"""`erphub reconcile` over in-memory systems: missing, different and extra found by reading the target's own
records, repaired through the normal write path, and a second pass clean."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from erphub.cli.main import app
from erphub.config.loader import load_config
from erphub.connectors.memory import MemorySystem, memory_system
from erphub.engine import run_pipeline
from erphub.monitoring import metrics
from erphub.reconcile import reconcile, same_value
from erphub.runtime import Hub
from erphub.store import Store
from tests.unit.engine.configs import customer_mapping, memory_pipeline_config

MAPPING = customer_mapping("number", {"number": "code", "name": "name", "phone": "phone"}, filters="""\
filter:
  - when: {path: status, eq: active}
    reason: only active customers
""")


def make_config(tmp_path: Path, tag: str) -> Path:
    return memory_pipeline_config(tmp_path, "crm_to_erp", MAPPING, source=(f"crm-{tag}", "customer", "code"),
                                  target=(f"erp-{tag}", "customer", "number"))


def erp_by_number(erp: MemorySystem) -> dict[str, dict]:
    return {str(r.data["number"]): r.data for r in erp.all("customer")}


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, MemorySystem, MemorySystem]:
    tag = request.node.name
    crm, erp = memory_system(f"crm-{tag}"), memory_system(f"erp-{tag}")
    for n in range(1, 7):
        crm.put("customer", {"code": f"C{n}", "name": f"Customer {n}", "phone": f"100{n}", "status": "active"})
    crm.put("customer", {"code": "P1", "name": "Prospect", "phone": "9", "status": "prospect"})  # filtered out
    config = make_config(tmp_path, tag)
    with Hub(load_config(config)) as hub:
        assert run_pipeline(hub.pipeline("crm_to_erp"), hub.store).counts["created"] == 6
    return config, crm, erp


def drift(crm: MemorySystem, erp: MemorySystem) -> None:
    """Behind the hub's back: one ERP record deleted, one owned field changed, one field the pipeline does
    not own changed, one CRM record deleted, one CRM customer made while the hub was not looking."""
    target = {str(r.data["number"]): r for r in erp.all("customer")}
    del erp.records["customer"][target["C2"].id]
    erp.put("customer", {**target["C3"].data, "phone": "WRONG"}, record_id=target["C3"].id)
    erp.put("customer", {**target["C4"].data, "credit_limit": 5000}, record_id=target["C4"].id)
    source = {str(r.data["code"]): r for r in crm.all("customer")}
    del crm.records["customer"][source["C5"].id]
    crm.put("customer", {"code": "C7", "name": "Customer 7", "phone": "1007", "status": "active"})


def test_reconcile_reports_missing_different_and_extra_from_the_targets_own_records(
        rig: tuple[Path, MemorySystem, MemorySystem]) -> None:
    config, crm, erp = rig
    with Hub(load_config(config)) as hub:
        report = reconcile(hub.pipeline("crm_to_erp"), hub.store)
        assert report.as_dict() == {"pipeline": "crm_to_erp", "compared": 6, "missing": 0, "different": 0,
                                    "extra": 0, "repaired": 0, "items": []}
        drift(crm, erp)
        found = reconcile(hub.pipeline("crm_to_erp"), hub.store).as_dict()
    assert found["compared"] == 6  # C1-C4, C6, C7 (the prospect is filtered out, as in a run)
    assert sorted((i["key"], i["kind"], tuple(i["fields"])) for i in found["items"]) == [
        ("C2", "missing", ()), ("C3", "different", ("phone",)), ("C5", "extra", ()), ("C7", "missing", ())]
    assert (found["missing"], found["different"], found["extra"]) == (2, 1, 1)
    assert metrics.drift_records.labels("crm_to_erp", "missing")._value.get() == 2
    with Hub(load_config(config)) as hub:  # kept in the store, where /metrics reads it after a restart
        assert hub.store.last_drift()["crm_to_erp"][1] == {"missing": 2, "different": 1, "extra": 1}


def test_drift_is_stored_per_pipeline_and_kind_and_a_pipeline_out_of_the_config_is_not_shown(store: Store) -> None:
    first, later = datetime(2026, 3, 1, 8, tzinfo=UTC), datetime(2026, 3, 1, 9, tzinfo=UTC)
    store.record_drift("orders", {"missing": 2, "different": 0, "extra": 1}, first)
    store.record_drift("retired", {"missing": 5, "different": 0, "extra": 0}, first)
    store.record_drift("orders", {"missing": 0, "different": 1, "extra": 0}, later)  # the last reconcile wins
    assert store.last_drift() == {"orders": (later.timestamp(), {"missing": 0, "different": 1, "extra": 0}),
                                  "retired": (first.timestamp(), {"missing": 5, "different": 0, "extra": 0})}
    store.pipelines_in_config = frozenset({"orders"})  # no reconcile could ever clear the retired one's drift
    assert set(store.last_drift()) == {"orders"}


def test_repair_goes_through_the_write_path_and_a_second_pass_is_clean(
        rig: tuple[Path, MemorySystem, MemorySystem]) -> None:
    config, crm, erp = rig
    drift(crm, erp)
    runner = CliRunner()
    args = ["reconcile", "crm_to_erp", "--json", "--config", str(config)]
    before = runner.invoke(app, args)
    assert before.exit_code == 1, before.output
    assert json.loads(before.stdout)["missing"] == 2

    repaired = runner.invoke(app, [*args, "--repair"])
    report = json.loads(repaired.stdout)
    assert report["repaired"] == 3 and report["missing"] == 2 and report["different"] == 1
    assert repaired.exit_code == 1, "the extra (a CRM record deleted, on_delete ignore) is still drift"
    target = erp_by_number(erp)
    assert target["C2"]["phone"] == "1002" and target["C7"]["name"] == "Customer 7"
    assert target["C3"]["phone"] == "1003"
    assert target["C4"]["credit_limit"] == 5000, "a field the pipeline does not own is left alone"
    assert sorted(target) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]  # nothing created twice

    again = json.loads(runner.invoke(app, args).stdout)
    assert (again["missing"], again["different"], again["extra"]) == (0, 0, 1)
    with Hub(load_config(config)) as hub:  # links were written: a normal run now has nothing to do
        counts = run_pipeline(hub.pipeline("crm_to_erp"), hub.store, full=True).counts
    assert counts["created"] + counts["updated"] == 0


def test_reconcile_of_an_unknown_pipeline_is_bad_input(rig: tuple[Path, MemorySystem, MemorySystem]) -> None:
    config, _, _ = rig
    result = CliRunner().invoke(app, ["reconcile", "nope", "--config", str(config)])
    assert result.exit_code == 2
    assert "unknown pipeline 'nope'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("want", "have", "same"), [
    (1130, 1130.0, True), ("2026-03-01", "2026-03-01T00:00:00", True), (None, "", True),
    ("2026-11-03 07:00:00", "2026-11-03T00:00:00", True), ("2026-11-03 07:00:00", "2026-11-04T00:00:00", False),
    ("2026-11-03 07:00:00", "2026-11-03T08:00:00", False),
    ({"FNumber": "KA"}, {"FNumber": "KA", "FName": "Key accounts"}, True), ("A", "a", False), (1, "x", False),
    ([{"q": 1}], [{"q": 1, "id": 9}], True), ([{"q": 1}], [], False)])
def test_values_compare_across_the_systems_own_spellings(want: object, have: object, same: bool) -> None:
    assert same_value(want, have) is same


def test_serve_reconciles_on_the_pipelines_own_schedule_and_repairs(
        rig: tuple[Path, MemorySystem, MemorySystem]) -> None:
    from erphub.serve import ReconcileSchedule

    config, crm, erp = rig
    config.write_text(config.read_text(encoding="utf-8")
                      + '    reconcile: {schedule: "*/5 * * * *", repair: true}\n', encoding="utf-8")
    drift(crm, erp)
    start = 1_800_000_000.0  # a 5-minute boundary: the first fire is 300 s later
    schedule = ReconcileSchedule(load_config(config), clock=lambda: start)
    try:
        assert schedule.next_at == {"crm_to_erp": start + 300}
        assert schedule.run_due(start + 299) == []
        assert erp_by_number(erp)["C3"]["phone"] == "WRONG"
        assert schedule.run_due(start + 300) == ["crm_to_erp"]
        assert schedule.next_at["crm_to_erp"] == start + 600
    finally:
        schedule.stop()
    assert erp_by_number(erp)["C3"]["phone"] == "1003" and "C7" in erp_by_number(erp)
    assert schedule.reports["crm_to_erp"].repaired == 3
    # What is left (the extra: on_delete ignore) is what the drift metric, and so ErphubDrift, sees.
    assert metrics.drift_records.labels("crm_to_erp", "extra")._value.get() == 1
    assert metrics.drift_records.labels("crm_to_erp", "missing")._value.get() == 0


def test_a_reconcile_schedule_must_be_a_cron_expression(tmp_path: Path) -> None:
    from erphub.core.errors import ConfigError

    config = make_config(tmp_path, "badcron")
    config.write_text(config.read_text(encoding="utf-8") + "    reconcile: {schedule: nightly}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "pipelines.crm_to_erp.reconcile.schedule" in caught.value.render()
    assert f"{config}:" in caught.value.render()


def test_an_update_only_pipeline_reports_no_missing(rig: tuple[Path, MemorySystem, MemorySystem]) -> None:
    config, crm, erp = rig
    config.write_text(config.read_text(encoding="utf-8") + "    create_missing: false\n", encoding="utf-8")
    drift(crm, erp)
    with Hub(load_config(config)) as hub:
        found = reconcile(hub.pipeline("crm_to_erp"), hub.store).as_dict()
    assert (found["missing"], found["different"], found["extra"]) == (0, 1, 1)


def _untimestamped_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CRM's customers as an entity whose state changes set no timestamp (as Kingdee's Submit/UnAudit)."""
    from dataclasses import replace

    from erphub.connectors.memory import MemoryConnector

    plain = MemoryConnector.entities

    def entities(self: MemoryConnector) -> dict:
        specs = dict(plain(self))
        if self.settings.system.startswith("crm-"):
            specs = {name: replace(spec, state_changes_timestamped=False) for name, spec in specs.items()}
        return specs

    monkeypatch.setattr(MemoryConnector, "entities", entities)


def test_serve_gives_a_pipeline_over_an_untimestamped_source_a_daily_reconcile_with_repair(
        rig: tuple[Path, MemorySystem, MemorySystem], monkeypatch: pytest.MonkeyPatch) -> None:
    from erphub.config.models import DEFAULT_RECONCILE
    from erphub.serve import ReconcileSchedule

    config, _crm, _erp = rig
    stamped = ReconcileSchedule(load_config(config))
    try:
        assert stamped.entries == {} and stamped.defaulted == []
    finally:
        stamped.stop()
    _untimestamped_source(monkeypatch)
    schedule = ReconcileSchedule(load_config(config))
    try:
        assert schedule.defaulted == ["crm_to_erp"]
        assert schedule.entries == {"crm_to_erp": DEFAULT_RECONCILE}
        assert DEFAULT_RECONCILE.schedule == "17 3 * * *" and DEFAULT_RECONCILE.repair
    finally:
        schedule.stop()


def test_an_explicit_reconcile_wins_over_the_default_and_a_null_schedule_opts_out(
        rig: tuple[Path, MemorySystem, MemorySystem], monkeypatch: pytest.MonkeyPatch) -> None:
    from erphub.serve import ReconcileSchedule

    config, _crm, _erp = rig
    _untimestamped_source(monkeypatch)
    base = config.read_text(encoding="utf-8")
    config.write_text(base + '    reconcile: {schedule: "*/5 * * * *"}\n', encoding="utf-8")
    explicit = ReconcileSchedule(load_config(config))
    try:
        assert explicit.defaulted == []
        assert explicit.entries["crm_to_erp"].schedule == "*/5 * * * *"
        assert not explicit.entries["crm_to_erp"].repair
    finally:
        explicit.stop()
    config.write_text(base + "    reconcile: {schedule: null}\n", encoding="utf-8")
    off = ReconcileSchedule(load_config(config))
    try:
        assert off.entries == {} and off.defaulted == [] and off.next_at == {}
    finally:
        off.stop()


def test_kingdee_entities_say_their_state_changes_are_not_all_timestamped() -> None:
    from erphub.connectors.kingdee.schema import SHAPES
    from erphub.connectors.kingdee.views import VIEW_SPECS

    assert SHAPES and all(not shape.spec().state_changes_timestamped for shape in SHAPES.values())
    assert all(not spec.state_changes_timestamped for spec in VIEW_SPECS.values())


def test_a_repair_whose_deletions_meet_a_running_pipeline_leaves_them_as_recorded_drift(
        rig: tuple[Path, MemorySystem, MemorySystem]) -> None:
    """The repair's deliveries land; its deletions wait for the pipeline, and when a run keeps it past
    the wait they are left for a later pass: counted as drift (what ErphubDrift sees), not an error."""
    import erphub.reconcile as reconcile_module
    from erphub.store.leases import owner_name

    config, crm, erp = rig
    config.write_text(config.read_text(encoding="utf-8") + "    on_delete: delete\n", encoding="utf-8")
    drift(crm, erp)
    with Hub(load_config(config)) as hub:
        pipeline = hub.pipeline("crm_to_erp")
        pipeline.lease_wait_s = 0.3
        report = reconcile(pipeline, hub.store)  # C5, deleted in the CRM, is the one extra
        assert [i.key for i in report.items if i.kind == "extra"] == ["C5"]
        other = owner_name("a-run")
        original_deliver = reconcile_module.deliver_records

        def deliver_then_a_run_starts(*args, **kwargs):  # a scheduled run takes the pipeline meanwhile
            info = original_deliver(*args, **kwargs)
            assert hub.store.acquire_lease("crm_to_erp", other, ttl_s=60) is None
            return info

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(reconcile_module, "deliver_records", deliver_then_a_run_starts)
            repaired = reconcile(pipeline, hub.store, repair=True)
        hub.store.release_lease("crm_to_erp", other)
    assert [(i.key, i.kind) for i in repaired.left] == [("C5", "extra")]
    assert "C5" in erp_by_number(erp)  # the ERP's own record: not deleted under the run
    assert erp_by_number(erp)["C2"]["phone"] == "1002"  # the deliveries landed
    assert metrics.drift_records.labels("crm_to_erp", "extra")._value.get() == 1
