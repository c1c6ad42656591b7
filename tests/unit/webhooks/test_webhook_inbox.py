"""Inbox store functions on SQLite and PostgreSQL (the `store` fixture runs each test on both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from erphub.store import Store
from erphub.webhooks import inbox
from erphub.webhooks.inbox import IncomingEvent, Settlement

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def incoming(deliver: str, nonce: str, *, record: str = "r1", pipelines: tuple[str, ...] = ("a",),
             at: datetime = T0) -> IncomingEvent:
    return IncomingEvent(source="jdy", deliver_id=deliver, nonce=nonce, op="data_update", record_id=record,
                         record_updated_at=at, payload={"_id": record, "名称": "华为"}, pipelines=pipelines)


def test_accept_duplicate_and_replay(store: Store) -> None:
    assert inbox.accept(store, incoming("d1", "n1"), nonce_window_s=600, now=T0) == "accepted"
    assert inbox.accept(store, incoming("d1", "n2"), nonce_window_s=600, now=T0) == "duplicate"
    assert inbox.accept(store, incoming("d2", "n1"), nonce_window_s=600, now=T0 + timedelta(seconds=599)) == \
        "replayed"
    assert inbox.accept(store, incoming("d3", "n1"), nonce_window_s=600, now=T0 + timedelta(seconds=601)) == \
        "accepted"
    events = inbox.get_events(store)
    assert [e.deliver_id for e in events] == ["d1", "d3"]
    assert events[0].payload == {"_id": "r1", "名称": "华为"} and events[0].record_updated_at == T0


def test_claim_settle_backoff_and_done(store: Store) -> None:
    inbox.accept(store, incoming("d1", "n1", pipelines=("a", "b")), nonce_window_s=600, now=T0)
    [event] = inbox.claim_due(store, limit=10, now=T0)
    outcome = Settlement()
    outcome.done(event.id, "a")
    outcome.fail(event.id, "b", "target down")
    inbox.settle(store, outcome, base_delay_s=5, max_delay_s=60, now=T0)
    [event] = inbox.get_events(store)
    assert (event.status, event.remaining, event.attempts) == ("pending", ("b",), 1)
    assert event.next_attempt_at == T0 + timedelta(seconds=5) and event.last_error == "b: target down"
    assert inbox.claim_due(store, limit=10, now=T0 + timedelta(seconds=4)) == []

    outcome = Settlement()
    outcome.fail(event.id, "b", "still down")
    inbox.settle(store, outcome, base_delay_s=5, max_delay_s=60, now=T0 + timedelta(seconds=5))
    [event] = inbox.get_events(store)
    assert event.attempts == 2 and event.next_attempt_at == T0 + timedelta(seconds=15)

    outcome = Settlement()
    outcome.done(event.id, "b")
    inbox.settle(store, outcome, base_delay_s=5, max_delay_s=60, now=T0 + timedelta(seconds=15))
    [event] = inbox.get_events(store)
    assert (event.status, event.remaining) == ("done", ())
    assert inbox.status_counts(store) == {"done": 1}


def test_superseded_by_a_newer_delivered_change(store: Store) -> None:
    inbox.accept(store, incoming("new", "n1", at=T0 + timedelta(minutes=1)), nonce_window_s=600, now=T0)
    [new] = inbox.claim_due(store, limit=10, now=T0)
    done = Settlement()
    done.done(new.id, "a")
    inbox.settle(store, done, base_delay_s=1, max_delay_s=1, now=T0)
    inbox.accept(store, incoming("old", "n2", at=T0), nonce_window_s=600, now=T0)
    [old] = inbox.claim_due(store, limit=10, now=T0)
    assert inbox.delivered_newer(store, "a", [old]) == {old.id}
    assert inbox.delivered_newer(store, "other", [old]) == set()


def test_purge_keeps_pending_and_recent(store: Store) -> None:
    inbox.accept(store, incoming("d1", "n1", pipelines=()), nonce_window_s=600, now=T0)  # done at arrival
    inbox.accept(store, incoming("d2", "n2"), nonce_window_s=600, now=T0)  # pending
    assert inbox.purge_finished(store, older_than_s=3600, now=T0 + timedelta(minutes=30)) == 0
    assert inbox.purge_finished(store, older_than_s=3600, now=T0 + timedelta(hours=2)) == 1
    assert [e.deliver_id for e in inbox.get_events(store)] == ["d2"]


def test_backoff_grows_and_is_capped() -> None:
    assert [inbox.backoff_seconds(n, 2, 30) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
