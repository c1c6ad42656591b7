"""`erphub serve --no-schedules` as a real subprocess on a free loopback port: a signed Jiandaoyun push
is accepted, delivered through its pipeline, visible in /metrics, and SIGTERM stops it cleanly.
Prefect is never imported in this mode, so the test takes seconds."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from tests.integration.serve_process import free_port, running_serve

ROOT = Path(__file__).resolve().parents[2]
SECRET = "serve-test-secret-51ab"
CANARY = "SERVE-CANARY-93d1"
LINK_SQL = sqlalchemy.text("select target_id, state from erphub_links"
                           " where pipeline='customers' and source_id='r-1'")
INBOX_SQL = sqlalchemy.text("select status from erphub_inbox where deliver_id='d-1'")


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "customer.yaml").write_text(textwrap.dedent("""\
        source: customer
        target: customer
        key: number
        fields:
          number: {from: customer_code}
          name: {from: customer_name, validate: {required: true}}
        """), encoding="utf-8")
    (tmp_path / "jdy.secret").write_text(SECRET, encoding="utf-8")
    config = tmp_path / "erphub.yaml"
    config.write_text(textwrap.dedent(f"""\
        version: 1
        store: {{url: "sqlite:///{tmp_path}/erphub.db"}}
        serve:
          webhooks:
            jdy: {{kind: jiandaoyun, secret: "${{file:jdy.secret}}"}}
        systems:
          crm: {{connector: memory, settings: {{system: crm, entities: {{customer: customer_code}}}}}}
          erp: {{connector: memory, settings: {{system: erp, entities: {{customer: number}}}}}}
        pipelines:
          customers:
            source: {{system: crm, entity: customer}}
            target: {{system: erp, entity: customer}}
            mapping: customer.yaml
            schedule: "*/5 * * * *"
            webhook: {{source: jdy}}
        """), encoding="utf-8")
    return config


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    with running_serve(write_config(tmp_path), port, cwd=tmp_path, env=os.environ,
                       args=("--no-schedules", "--log-format", "json")) as proc:
        yield f"http://127.0.0.1:{port}", tmp_path, proc


def signed_push(base: str, payload: dict[str, object], deliver: str) -> httpx.Response:
    raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    ts, nonce = str(int(time.time())), f"n-{deliver}"
    sig = hashlib.sha1(f"{nonce}:{raw.decode()}:{SECRET}:{ts}".encode()).hexdigest()
    return httpx.post(f"{base}/webhooks/jdy", params={"timestamp": ts, "nonce": nonce}, content=raw,
                      headers={"X-JDY-Signature": sig, "X-JDY-DeliverId": deliver}, timeout=10)


def test_serve_accepts_delivers_exposes_metrics_and_stops_on_sigterm(served) -> None:
    base, tmp_path, proc = served
    health = httpx.get(f"{base}/healthz", timeout=5).json()
    assert health["inbox_worker"] == "running" and health["schedules"] == "off"
    assert health["prefect_loaded"] is False

    data = {"_id": "r-1", "customer_code": "CUS-1", "customer_name": CANARY,
            "updateTime": "2026-03-01T08:00:00.000Z"}
    accepted = signed_push(base, {"op": "data_create", "data": data}, "d-1")
    assert accepted.status_code == 200 and accepted.json()["message"] == "accepted"
    assert signed_push(base, {"op": "data_create", "data": data}, "d-1").json()["message"] == "duplicate"
    bad = httpx.post(f"{base}/webhooks/jdy", params={"timestamp": "1", "nonce": "x"},
                     content=b'{"op": "data_create"}', headers={"X-JDY-Signature": "0" * 40}, timeout=5)
    assert bad.status_code == 401

    # Delivered: the link to the target record is in the store (the memory target lives in that process).
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path}/erphub.db")
    deadline = time.monotonic() + 20
    link = None
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            link = conn.execute(LINK_SQL).first()
            status = conn.execute(INBOX_SQL).scalar()
        if link is not None and status == "done":
            break
        time.sleep(0.1)
    engine.dispose()
    assert link is not None and link.state == "synced" and link.target_id

    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'erphub_webhook_events_total{outcome="accepted",source="jdy"} 1.0' in metrics
    assert 'erphub_webhook_events_total{outcome="duplicate",source="jdy"} 1.0' in metrics
    assert 'erphub_webhook_events_total{outcome="bad_signature",source="jdy"} 1.0' in metrics
    assert 'erphub_records_total{outcome="created",pipeline="customers"} 1.0' in metrics
    assert 'erphub_pipeline_schedule_interval_seconds{pipeline="customers"} 300.0' in metrics

    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "erphub serve stopped" in out
    assert CANARY not in out and SECRET not in out
