"""newest_wins under clock skew: the ERP's clock runs 5 s behind, the pair's allowance (overlap window) is
10 s. An ERP edit made after a CRM edit but stamped earlier must not lose to it: edits closer than the
allowance are concurrent and held for a person; edits further apart go to the truly newer one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from erphub.engine.twoway import source_is_newer
from tests.unit.engine.twoway_world import World


def skewed_world(tmp_path: Path, tag: str, lag_seconds: float | None) -> World:
    world = World(tag, tmp_path, "newest_wins", skew={"erp": timedelta(seconds=5)}, lag_seconds=lag_seconds)
    world.seed(["C1"])
    world.run_both()
    world.run_both()
    assert world.phones("C1") == ("P0-C1", "P0-C1")
    return world


def test_an_edit_stamped_by_a_slow_clock_is_held_not_overwritten(tmp_path: Path) -> None:
    world = skewed_world(tmp_path, "skew-held", lag_seconds=10)
    try:
        world.edit("crm", "C1", "phone", "CRM-1")
        world.edit("erp", "C1", "phone", "ERP-2")  # a second later, stamped 4 s earlier than the CRM's
        assert world.record("erp", "C1").updated_at < world.record("crm", "C1").updated_at
        world.run_both()
        world.edit("crm", "C1", "name", "renamed")  # the hub's write of the name moves the ERP's change time
        world.run_both()
        assert world.run_both() == 0
        assert world.phones("C1") == ("CRM-1", "ERP-2"), "concurrent: neither side is overwritten"
        assert world.record("erp", "C1").data["name"] == "renamed"
        [held] = world.hub.store.list_conflicts(status="held")
        assert held.field == "phone" and held.rule == "newest_wins" and held.winner is None
    finally:
        world.close()


def test_without_the_allowance_the_slow_clock_loses_its_newer_edit(tmp_path: Path) -> None:
    """The failure the allowance prevents (lag 0: no allowance)."""
    world = skewed_world(tmp_path, "skew-none", lag_seconds=0)
    try:
        world.edit("crm", "C1", "phone", "CRM-1")
        world.edit("erp", "C1", "phone", "ERP-2")
        world.run_both()
        world.run_both()
        assert world.phones("C1") == ("CRM-1", "CRM-1")
        assert world.newest_phone("C1") == "ERP-2"
    finally:
        world.close()


def test_edits_further_apart_than_the_allowance_go_to_the_newer_one(tmp_path: Path) -> None:
    world = skewed_world(tmp_path, "skew-apart", lag_seconds=10)
    try:
        world.edit("crm", "C1", "phone", "CRM-1")
        world.now += timedelta(seconds=20)
        world.edit("erp", "C1", "phone", "ERP-2")
        world.run_both()
        world.run_both()
        assert world.run_both() == 0
        assert world.phones("C1") == ("ERP-2", "ERP-2")
        assert world.hub.store.list_conflicts(status="held") == []
    finally:
        world.close()


def test_the_verdict_is_the_same_from_both_directions() -> None:
    from datetime import UTC, datetime

    a, b = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 0, 0, 7, tzinfo=UTC)
    assert source_is_newer(a, b, first_of_pair=True, skew_s=10) is None
    assert source_is_newer(b, a, first_of_pair=False, skew_s=10) is None
    assert source_is_newer(a, b, first_of_pair=True, skew_s=5) is False
    assert source_is_newer(b, a, first_of_pair=False, skew_s=5) is True
    assert source_is_newer(a, a, first_of_pair=True) is True and source_is_newer(a, a, first_of_pair=False) is False
    assert source_is_newer(a, None, first_of_pair=False, skew_s=10) is True
