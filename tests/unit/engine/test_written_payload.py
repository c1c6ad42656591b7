"""What a link keeps as written: the payload hashed for change detection is stored from the text
encoded for its hash (erphub.core.records.CanonicalPayload), and reads back as that payload."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from erphub.core.records import CanonicalPayload, canonical_json, hashed_payload, payload_hash
from erphub.engine import run_pipeline
from erphub.store import Store
from erphub.store.db import _dumps
from tests.unit.engine.test_engine import make_pipeline, seed_customers


def test_a_created_record_keeps_exactly_its_mapped_payload_and_hash(store: Store, systems, request) -> None:
    crm, _ = systems
    seed_customers(crm, 5)
    run_pipeline(make_pipeline(systems, request), store)
    records = crm.all("customer")
    links = store.links_for("customers", [r.id for r in records])
    for record in records:
        mapped = {"number": record.data["code"], "name": record.data["name"]}
        link = links[record.id]
        assert link.written_payload == mapped  # read back from the database, not the object we stored
        assert link.payload_hash == payload_hash(mapped)
    # and the next run finds nothing changed: the stored hash and text agree with a fresh mapping
    again = run_pipeline(make_pipeline(systems, request), store, since=datetime(2000, 1, 1, tzinfo=UTC))
    assert again.counts["unchanged"] == 5, dict(again.counts)


def test_a_create_carries_its_hashed_text_and_an_update_does_not(store: Store, systems, request,
                                                                    monkeypatch) -> None:
    crm, _ = systems
    seed_customers(crm, 3)
    written: list[object] = []
    commit = store.commit_batch
    monkeypatch.setattr(store, "commit_batch", lambda batch, endpoints: (
        written.extend(link.written_payload for link in batch.links), commit(batch, endpoints))[1])
    run_pipeline(make_pipeline(systems, request), store)
    assert [type(w) for w in written] == [CanonicalPayload] * 3  # created: the text hashed in _classify
    record = crm.all("customer")[0]
    crm.put("customer", {**record.data, "name": "客户 renamed"}, record_id=record.id)
    written.clear()
    run_pipeline(make_pipeline(systems, request), store)
    assert len(written) == 1 and type(written[0]) is dict  # an update merges the link's previous payload
    assert store.links_for("customers", [record.id])[record.id].written_payload["name"] == "客户 renamed"


def test_copy_and_pickle_rebuild_a_canonical_payload_whole() -> None:
    payload = CanonicalPayload({"a": [1]}, '{"a":[1]}')
    for twin in (copy.copy(payload), copy.deepcopy(payload), pickle.loads(pickle.dumps(payload))):
        assert type(twin) is CanonicalPayload and twin == payload and twin.canonical == payload.canonical


def test_the_store_writes_the_carried_text_which_is_the_canonical_text() -> None:
    data = {"b": Decimal("1.50"), "a": {"z": [1, "上海"], "y": None}}
    text, digest = hashed_payload(data)
    payload = CanonicalPayload(data, text)
    assert payload == data and dict(payload) == data
    assert _dumps(payload) == text == canonical_json(data) == canonical_json(dict(payload))
    assert digest == payload_hash(data)
    # the carried text is what is written, not a second encoding (a marker text shows which)
    assert _dumps(CanonicalPayload(data, '{"carried":true}')) == '{"carried":true}'


@pytest.mark.parametrize("change", [
    lambda p: p.__setitem__("a", 1), lambda p: p.__delitem__("b"), lambda p: p.update(a=1),
    lambda p: p.pop("b"), lambda p: p.popitem(), lambda p: p.setdefault("c", 1), lambda p: p.clear(),
    lambda p: p.__ior__({"c": 1}),
])
def test_a_canonical_payload_cannot_change_under_its_text(change) -> None:
    payload = CanonicalPayload({"a": 0, "b": 1}, '{"a":0,"b":1}')
    with pytest.raises(TypeError):
        change(payload)
    assert payload == {"a": 0, "b": 1}
