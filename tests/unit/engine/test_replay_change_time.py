"""Replay keeps the record's own change time: a later read of a newer version is delivered, not "stale"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from erphub.config.models import InboxSettings
from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, MemorySystem
from erphub.engine import Pipeline, replay_dead_letters, run_pipeline
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.store import Store
from erphub.webhooks import inbox
from erphub.webhooks.inbox import IncomingEvent
from erphub.webhooks.worker import InboxWorker


class NamePlan:
    key_field = "number"
    owned_fields = frozenset({"number", "name"})

    def apply(self, record: Mapping[str, Any]) -> Mapped | Rejected | Skipped:
        return Mapped({"number": record["code"], "name": record["name"]}, key=record["code"])


def test_replayed_inbox_letter_does_not_hide_the_newer_version(
        store: Store, systems: tuple[MemorySystem, MemorySystem], request: pytest.FixtureRequest) -> None:
    crm, erp = systems
    tag = request.node.name
    pipeline = Pipeline(
        name="customers", source_system="crm", source_entity="customer",
        source=MemoryConnector(MemorySettings(system=f"crm-{tag}", entities={"customer": "code"}),
                               SystemContext(name="crm")),
        target_system="erp", target_entity="customer",
        target=MemoryConnector(MemorySettings(system=f"erp-{tag}", entities={"customer": "number"}),
                               SystemContext(name="erp")),
        plan=NamePlan())
    originals = [crm.put("customer", {"code": f"C{i:03d}", "name": "v0"}) for i in range(20)]
    assert run_pipeline(pipeline, store).counts["created"] == 20

    # v1 of each is pushed while the ERP is down: the inbox gives up and keeps dead letters.
    erp.down = True
    for record in originals:
        v1 = crm.put("customer", {**record.data, "name": "v1"}, record_id=record.id)
        inbox.accept(store, IncomingEvent(
            source="crm", deliver_id=f"d-{record.id}", nonce=f"n-{record.id}", op="data_update",
            record_id=record.id, record_updated_at=v1.updated_at, payload=v1.data, pipelines=("customers",)),
            nonce_window_s=600)
    worker = InboxWorker(store, lambda name: pipeline, InboxSettings(max_attempts=1, base_delay_s=0))
    assert worker.run_once().dead_lettered == 20
    letters = store.list_dead_letters(pipeline="customers")
    assert len(letters) == 20 and all(letter.source_updated_at is not None for letter in letters)

    # People edit again (v2), then the ERP comes back and someone replays the letters (v1).
    for record in originals:
        crm.put("customer", {**record.data, "name": "v2"}, record_id=record.id)
    erp.down = False
    assert replay_dead_letters(pipeline, store).counts["updated"] == 20
    # The scheduled read of v2 must land: v2 is newer than the replayed v1.
    assert run_pipeline(pipeline, store).counts["updated"] == 20
    assert sorted(r.data["name"] for r in erp.all("customer")) == ["v2"] * 20
