"""The webhook receiver and inbox worker over a real config, store (SQLite file) and memory systems.

Good, bad-signature, stale, replayed and duplicate deliveries and malformed bodies; an event accepted
while the target is down is delivered once it is back; the inbox survives a restart; a canary value
from the payloads never reaches the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from erphub.config.loader import load_config
from erphub.connectors.memory import MemorySystem, memory_system
from erphub.engine import replay_dead_letters
from erphub.monitoring.logging import configure_logging
from erphub.monitoring.metrics import REGISTRY
from erphub.runtime import Hub
from erphub.webhooks import inbox
from erphub.webhooks.receiver import WebhookReceiver, router_from_config
from erphub.webhooks.worker import InboxSettings, InboxWorker

JDY_SECRET = "jdy-push-secret-3c1d"
HMAC_SECRET = "hmac-push-secret-9e2a"
CANARY = "CANARY-客户-7f3e91"
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)

MAPPING = """\
source: customer
target: customer
key: number
fields:
  number:
    from: customer_code
  name:
    from: customer_name
    validate: {required: true}
"""


def write_config(tmp_path: Path, tag: str) -> Path:
    (tmp_path / "customer.yaml").write_text(MAPPING, encoding="utf-8")
    # File references: the loader resolves `${env:...}` in the serve section before it reads secrets.
    (tmp_path / "jdy.secret").write_text(JDY_SECRET, encoding="utf-8")
    (tmp_path / "hmac.secret").write_text(HMAC_SECRET, encoding="utf-8")
    config = tmp_path / "erphub.yaml"
    config.write_text(textwrap.dedent(f"""\
        version: 1
        store: {{url: "sqlite:///{tmp_path}/erphub.db"}}
        serve:
          webhooks:
            jdy: {{kind: jiandaoyun, secret: "${{file:jdy.secret}}", max_age_s: 300}}
            generic: {{kind: hmac, secret: "${{file:hmac.secret}}", max_age_s: 60, header: X-Hub-Signature}}
        systems:
          crm: {{connector: memory, settings: {{system: crm-{tag}, entities: {{customer: customer_code}}}}}}
          erp: {{connector: memory, settings: {{system: erp-{tag}, entities: {{customer: number}}}}}}
        pipelines:
          customers:
            source: {{system: crm, entity: customer}}
            target: {{system: erp, entity: customer}}
            mapping: customer.yaml
            webhook: {{source: jdy, events: [data_create, data_update]}}
          customers_generic:
            source: {{system: crm, entity: customer}}
            target: {{system: erp, entity: customer}}
            mapping: customer.yaml
            webhook: {{source: generic, events: [created]}}
        """), encoding="utf-8")
    return config


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Env:
    config: Path
    hub: Hub
    client: TestClient
    worker: InboxWorker
    clock: Clock
    erp: MemorySystem
    logs: io.StringIO
    tag: str
    notified: list[int] = field(default_factory=list)

    def worker_for(self, hub: Hub, **settings: Any) -> InboxWorker:
        return InboxWorker(hub.store, hub.pipeline, InboxSettings(**settings), redact=hub.redactor(),
                           clock=self.clock)


def open_hub(config: Path) -> Hub:
    return Hub(load_config(config, environ={}))


def make_client(hub: Hub, clock: Clock, notified: list[int]) -> TestClient:
    route = router_from_config(hub.config.hub.pipelines)
    receiver = WebhookReceiver(hub.config.hub.serve.webhooks, hub.store, route,
                               on_accepted=lambda: notified.append(1), clock=lambda: clock.now.timestamp())
    return TestClient(Starlette(routes=receiver.routes()))


@pytest.fixture
def env(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    tag = uuid.uuid4().hex[:8]
    config = write_config(tmp_path, tag)
    logs = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", secrets=[], stream=logs)
    hub = open_hub(config)
    clock = Clock()
    notified: list[int] = []
    client = make_client(hub, clock, notified)
    settings = InboxSettings(max_attempts=3, base_delay_s=10, max_delay_s=60)
    worker = InboxWorker(hub.store, hub.pipeline, settings, redact=hub.redactor(), clock=clock)
    e = Env(config, hub, client, worker, clock, memory_system(f"erp-{tag}"), logs, tag, notified)
    yield e
    client.close()
    hub.close()
    # Nothing any test sent may surface in the logs: not the payload canary, not a secret.
    text = logs.getvalue()
    assert CANARY not in text
    assert JDY_SECRET not in text and HMAC_SECRET not in text


# -- signing the way the senders do --------------------------------------------------------------
def customer(record_id: str, code: str, *, name: str = CANARY, at: datetime = T0) -> dict[str, Any]:
    return {"_id": record_id, "customer_code": code, "customer_name": name,
            "updateTime": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "createTime": "2026-01-01T00:00:00.000Z"}


def jdy_post(e: Env, body: bytes | dict[str, Any], *, deliver: str | None = None, nonce: str | None = None,
             timestamp: float | None = None, secret: str = JDY_SECRET, source: str = "jdy") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    ts = str(int(timestamp if timestamp is not None else e.clock.now.timestamp()))
    nonce = nonce or uuid.uuid4().hex[:10]
    sig = hashlib.sha1(f"{nonce}:{raw.decode('utf-8')}:{secret}:{ts}".encode()).hexdigest()
    headers = {"X-JDY-Signature": sig, "X-JDY-DeliverId": deliver or uuid.uuid4().hex,
               "Content-Type": "application/json"}
    return e.client.post(f"/webhooks/{source}", params={"timestamp": ts, "nonce": nonce}, content=raw,
                         headers=headers)


def hmac_post(e: Env, body: dict[str, Any], *, secret: str = HMAC_SECRET, deliver: str = "g-1") -> Any:
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    ts = str(int(e.clock.now.timestamp()))
    sig = hmac.new(secret.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return e.client.post("/webhooks/generic", content=raw,
                         headers={"X-Timestamp": ts, "X-Hub-Signature": f"sha256={sig}",
                                  "X-Delivery-Id": deliver})


def metric(source: str, outcome: str) -> float:
    labels = {"source": source, "outcome": outcome}
    return REGISTRY.get_sample_value("erphub_webhook_events_total", labels) or 0.0


def erp_names(e: Env) -> dict[str, str]:
    return {r.data["number"]: r.data["name"] for r in e.erp.all("customer")}


# -- receiver ------------------------------------------------------------------------------------
def test_good_delivery_is_committed_before_200_then_delivered(env: Env) -> None:
    before = metric("jdy", "accepted")
    response = jdy_post(env, {"op": "data_create", "data": customer("r1", "CUS-1")}, deliver="d-1")
    assert response.status_code == 200 and response.json()["message"] == "accepted"
    assert metric("jdy", "accepted") == before + 1
    assert env.notified == [1]

    # Committed: a separate store on the same file sees it before any worker ran.
    other = open_hub(env.config)
    try:
        [event] = inbox.get_events(other.store)
    finally:
        other.close()
    assert (event.source, event.deliver_id, event.op, event.record_id, event.status) == (
        "jdy", "d-1", "data_create", "r1", "pending")
    assert event.payload["customer_name"] == CANARY and event.pipelines == ("customers",)
    assert env.erp.all("customer") == []

    result = env.worker.run_once()
    assert (result.claimed, result.delivered) == (1, 1)
    assert erp_names(env) == {"CUS-1": CANARY}
    [event] = inbox.get_events(env.hub.store)
    assert event.status == "done" and event.remaining == ()
    assert env.hub.store.recent_runs("customers", 1)[0].trigger == "webhook"
    logged = [json.loads(line) for line in env.logs.getvalue().splitlines() if line.startswith("{")]
    received = [line for line in logged if line.get("event") == "webhook received"]
    assert received and {"source", "deliver_id", "outcome"} <= set(received[0])


@pytest.mark.parametrize("variant", ["wrong_secret", "no_signature", "tampered"])
def test_bad_signature_is_401_and_stores_nothing(env: Env, variant: str) -> None:
    before = metric("jdy", "bad_signature")
    body = {"op": "data_create", "data": customer("r1", "CUS-1")}
    if variant == "wrong_secret":
        response = jdy_post(env, body, secret="not-the-secret")
    elif variant == "no_signature":
        response = env.client.post("/webhooks/jdy", json=body)
    else:
        raw = json.dumps(body).encode()
        ts, nonce = str(int(env.clock.now.timestamp())), "abc"
        sig = hashlib.sha1(f"{nonce}:{raw.decode()}:{JDY_SECRET}:{ts}".encode()).hexdigest()
        response = env.client.post("/webhooks/jdy", params={"timestamp": ts, "nonce": nonce},
                                   content=raw.replace(b"CUS-1", b"CUS-9"), headers={"X-JDY-Signature": sig})
    assert response.status_code == 401
    assert metric("jdy", "bad_signature") == before + 1
    assert inbox.get_events(env.hub.store) == []


@pytest.mark.parametrize("offset", [-301, -86400, 301])
def test_stale_or_future_timestamp_is_401(env: Env, offset: int) -> None:
    before = metric("jdy", "stale")
    response = jdy_post(env, {"op": "data_create", "data": customer("r1", "CUS-1")},
                        timestamp=env.clock.now.timestamp() + offset)
    assert response.status_code == 401 and "window" in response.json()["message"]
    assert metric("jdy", "stale") == before + 1
    assert inbox.get_events(env.hub.store) == []


def test_reused_nonce_is_refused_even_after_a_restart(env: Env) -> None:
    body = {"op": "data_update", "data": customer("r1", "CUS-1")}
    assert jdy_post(env, body, deliver="d-1", nonce="nonce-1").status_code == 200
    before = metric("jdy", "replayed")
    # The captured request sent again with a new delivery id (the header is not signed).
    again = jdy_post(env, body, deliver="d-forged", nonce="nonce-1")
    assert again.status_code == 401 and metric("jdy", "replayed") == before + 1

    restarted = open_hub(env.config)
    try:
        client = make_client(restarted, env.clock, [])
        other = Env(env.config, restarted, client, env.worker, env.clock, env.erp, env.logs, env.tag)
        replay = jdy_post(other, body, deliver="d-forged-2", nonce="nonce-1")
        assert replay.status_code == 401 and metric("jdy", "replayed") == before + 2
        client.close()
    finally:
        restarted.close()
    assert [e.deliver_id for e in inbox.get_events(env.hub.store)] == ["d-1"]

    # Outside the window the nonce is no longer remembered as used (the timestamp guards that span).
    env.clock.advance(601)
    assert jdy_post(env, body, deliver="d-2", nonce="nonce-1").status_code == 200


def test_duplicate_delivery_is_200_and_delivered_once(env: Env) -> None:
    body = {"op": "data_create", "data": customer("r1", "CUS-1")}
    before = metric("jdy", "duplicate")
    assert jdy_post(env, body, deliver="same").json()["message"] == "accepted"
    second = jdy_post(env, body, deliver="same")  # the sender retrying: new nonce, same delivery id
    assert second.status_code == 200 and second.json()["message"] == "duplicate"
    assert metric("jdy", "duplicate") == before + 1
    assert len(inbox.get_events(env.hub.store)) == 1
    env.worker.run_once()
    assert jdy_post(env, body, deliver="same").json()["message"] == "duplicate"  # also once delivered
    env.worker.run_once()
    assert env.erp.write_calls == 1 and len(env.erp.all("customer")) == 1


@pytest.mark.parametrize("raw", [
    b"this is not json " + CANARY.encode(),
    json.dumps({"data": {"_id": "r1", "customer_name": CANARY}}).encode(),
    json.dumps({"op": "data_create"}).encode(),
    json.dumps({"op": "data_create", "data": CANARY}).encode(),
    json.dumps({"op": "data_create", "data": {"customer_name": CANARY}}).encode(),
    json.dumps({"op": "data_create", "data": {"_id": "r1", "updateTime": CANARY}}).encode(),
])
def test_malformed_body_is_400_and_stores_nothing(env: Env, raw: bytes) -> None:
    before = metric("jdy", "malformed")
    response = jdy_post(env, raw)
    assert response.status_code == 400
    assert CANARY not in response.text
    assert metric("jdy", "malformed") == before + 1
    assert inbox.get_events(env.hub.store) == []


def test_unknown_source_is_404(env: Env) -> None:
    response = jdy_post(env, {"op": "data_create", "data": customer("r1", "CUS-1")}, source="nope")
    assert response.status_code == 404
    assert inbox.get_events(env.hub.store) == []


def test_event_no_pipeline_takes_is_kept_as_done_and_not_written(env: Env) -> None:
    response = jdy_post(env, {"op": "data_remove", "data": customer("r1", "CUS-1")}, deliver="rm-1")
    assert response.status_code == 200
    [event] = inbox.get_events(env.hub.store)
    assert event.status == "done" and event.pipelines == ()
    assert env.worker.run_once().claimed == 0 and env.erp.write_calls == 0


def test_generic_hmac_source(env: Env) -> None:
    body = {"op": "created", "data": customer("g1", "CUS-G")}
    assert hmac_post(env, body, secret="wrong").status_code == 401
    accepted = hmac_post(env, body)
    assert accepted.status_code == 200 and accepted.json()["message"] == "accepted"
    assert hmac_post(env, body).json()["message"] == "duplicate"
    env.worker.run_once()
    assert erp_names(env) == {"CUS-G": CANARY}
    [event] = inbox.get_events(env.hub.store)
    assert event.pipelines == ("customers_generic",)


# -- worker --------------------------------------------------------------------------------------
def test_event_accepted_while_target_down_is_delivered_once_it_is_back(env: Env) -> None:
    env.erp.down = True
    assert jdy_post(env, {"op": "data_create", "data": customer("r1", "CUS-1")}).status_code == 200

    first = env.worker.run_once()
    assert (first.delivered, first.retrying) == (0, 1)
    [event] = inbox.get_events(env.hub.store)
    assert event.status == "pending" and event.attempts == 1 and "down" in (event.last_error or "")
    assert event.next_attempt_at == env.clock.now + timedelta(seconds=10)
    assert env.worker.run_once().claimed == 0  # backing off: not due yet

    env.clock.advance(10)
    second = env.worker.run_once()  # still down: the next wait doubles
    assert second.retrying == 1
    [event] = inbox.get_events(env.hub.store)
    assert event.attempts == 2 and event.next_attempt_at == env.clock.now + timedelta(seconds=20)

    env.erp.down = False
    env.clock.advance(20)
    third = env.worker.run_once()
    assert third.delivered == 1
    assert erp_names(env) == {"CUS-1": CANARY}
    [event] = inbox.get_events(env.hub.store)
    assert event.status == "done"
    assert env.hub.store.list_dead_letters(pipeline="customers") == []


def test_after_max_attempts_events_go_to_dead_letters_and_replay_delivers_them(env: Env) -> None:
    env.erp.down = True
    for i in range(2):
        jdy_post(env, {"op": "data_create", "data": customer(f"r{i}", f"CUS-{i}")})
    for _ in range(3):
        env.worker.run_once()
        env.clock.advance(3600)
    events = inbox.get_events(env.hub.store)
    assert [e.status for e in events] == ["failed", "failed"] and all(e.attempts == 3 for e in events)
    letters = env.hub.store.list_dead_letters(pipeline="customers")
    assert sorted(letter.source_id for letter in letters) == ["r0", "r1"]
    assert {letter.stage for letter in letters} == {"inbox"}
    assert letters[0].source_payload["customer_name"] == CANARY  # the whole event is kept
    assert env.worker.run_once().claimed == 0

    env.erp.down = False
    info = replay_dead_letters(env.hub.pipeline("customers"), env.hub.store)
    assert info.counts["created"] == 2
    assert sorted(erp_names(env)) == ["CUS-0", "CUS-1"]
    assert env.hub.store.list_dead_letters(pipeline="customers") == []


def test_per_record_rejection_becomes_a_dead_letter_and_the_event_is_done(env: Env) -> None:
    jdy_post(env, {"op": "data_create", "data": {**customer("r1", "CUS-1"), "customer_name": ""}})
    result = env.worker.run_once()
    assert result.delivered == 1
    [letter] = env.hub.store.list_dead_letters(pipeline="customers")
    assert (letter.stage, letter.error_code, letter.field) == ("map", "required", "name")
    assert inbox.get_events(env.hub.store)[0].status == "done"


def test_inbox_survives_a_restart(env: Env) -> None:
    env.erp.down = True
    jdy_post(env, {"op": "data_create", "data": customer("r1", "CUS-1")}, deliver="d-1")
    env.worker.run_once()
    env.hub.close()

    restarted = open_hub(env.config)  # a new process: new Store on the same SQLite file
    try:
        [event] = inbox.get_events(restarted.store)
        assert (event.status, event.attempts) == ("pending", 1)
        env.erp.down = False
        env.clock.advance(10)
        worker = env.worker_for(restarted, max_attempts=3, base_delay_s=10)
        assert worker.run_once().delivered == 1
        assert erp_names(env) == {"CUS-1": CANARY}
        client = make_client(restarted, env.clock, [])
        again = jdy_post(Env(env.config, restarted, client, worker, env.clock, env.erp, env.logs, env.tag),
                         {"op": "data_create", "data": customer("r1", "CUS-1")}, deliver="d-1")
        assert again.json()["message"] == "duplicate"
        client.close()
    finally:
        restarted.close()


def test_newest_change_wins_and_an_older_event_never_overwrites_it(env: Env) -> None:
    old = customer("r1", "CUS-1", name="旧名", at=T0)
    new = customer("r1", "CUS-1", name="新名", at=T0 + timedelta(minutes=5))
    jdy_post(env, {"op": "data_update", "data": new})
    jdy_post(env, {"op": "data_update", "data": old})  # arrives late, in the same batch
    env.worker.run_once()
    assert erp_names(env) == {"CUS-1": "新名"}

    # The old change once more, now after the new one was delivered: superseded, not written.
    jdy_post(env, {"op": "data_update", "data": old})
    result = env.worker.run_once()
    assert result.superseded == 1 and result.delivered == 0
    assert erp_names(env) == {"CUS-1": "新名"}
    assert all(e.status == "done" for e in inbox.get_events(env.hub.store))


def test_worker_thread_delivers_after_notify(env: Env) -> None:
    worker = env.worker_for(env.hub, poll_interval_s=0.05)
    worker.start()
    try:
        jdy_post(env, {"op": "data_create", "data": customer("r1", "CUS-1")})
        worker.notify()
        for _ in range(200):
            if env.erp.all("customer"):
                break
            time.sleep(0.02)
        assert erp_names(env) == {"CUS-1": CANARY}
        assert worker.alive
    finally:
        worker.stop()
    assert not worker.alive
