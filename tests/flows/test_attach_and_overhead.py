"""`erphub run --engine prefect` on the Prefect server of a running `erphub serve`, and the pieces that keep a
flow run's overhead low (flows/sync.py): chunks taken as they are read, a read error that ends a chunk without
being retried, the heartbeat thread not waited for.

The serve test starts a real `erphub serve` (its Prefect server child on loopback, from a migrated database) and
a real one-shot `erphub run` beside it, each with no PREFECT_ variable of the test process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import prefect.flow_engine
import pytest
from prefect import flow

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.core.errors import TransientError
from erphub.core.records import Cursor, Page, Record
from erphub.engine import Pipeline, run_pipeline
from erphub.flows import sync
from erphub.flows.prefect_env import SERVER_FILE, attach_to_serve, free_port, record_server, running_server
from erphub.store import Store
from tests.prefect_template import seed_prefect_home
from tests.unit.engine.test_engine import CustomerPlan, seed_customers

pytestmark = pytest.mark.prefect

ROOT = Path(__file__).resolve().parents[2]


AT = datetime(2026, 1, 1, tzinfo=UTC)


def _page(n: int, start: int) -> Page:
    records = [Record(f"r{i}", AT, {"code": f"C{i}"}) for i in range(start, start + n)]
    return Page(records, Cursor(AT, f"r{start + n - 1}"))


def test_a_chunk_takes_its_pages_as_they_are_read_and_a_retry_replays_them_first() -> None:
    reads: list[int] = []

    def source() -> Iterator[Page]:
        for index in range(5):
            reads.append(index)
            yield _page(4, index * 4)

    chunked = sync.chunks_as_read(source(), size=8)
    first = next(chunked)
    assert reads == [0]  # the task of a chunk starts once its first page is there
    taken = first.taken()
    next(taken)
    assert reads == [0]
    next(taken)
    assert reads == [0, 1]  # the next page is read only when the task wants it
    assert list(taken) == [] and len(first.pages) == 2  # 8 records: the chunk is full
    assert [p.records[0].id for p in first.taken()] == ["r0", "r4"]  # a retry: the same pages, none read
    assert reads == [0, 1]
    second = next(chunked)
    assert [p.records[0].id for p in second.taken()] == ["r8", "r12"]
    third = next(chunked)
    assert [p.records[0].id for p in third.taken()] == ["r16"]  # the source ended inside it
    assert list(chunked) == []


class _BrokenAfter(MemoryConnector):
    """A source whose read fails (as an outage) after `pages` pages."""

    def __init__(self, settings: MemorySettings, pages: int) -> None:
        super().__init__(settings, SystemContext(name="crm"))
        self.pages = pages
        self.reads = 0

    def read_changes(self, entity: str, since: Cursor | None, *, page_size: int = 100,
                     until: Cursor | None = None) -> Iterator[Page]:
        self.reads += 1
        for index, page in enumerate(super().read_changes(entity, since, page_size=page_size, until=until)):
            if index == self.pages:
                raise TransientError("source went away mid-read", system="crm")
            yield page


def test_a_read_failure_inside_a_chunk_ends_it_fails_the_run_and_is_never_retried(tmp_path: Path) -> None:
    tag = "read-mid-chunk"
    crm, erp = memory_system(f"crm-{tag}"), memory_system(f"erp-{tag}")
    seed_customers(crm, 20)
    source = _BrokenAfter(MemorySettings(system=f"crm-{tag}", entities={"customer": "code"}), pages=2)
    pipeline = Pipeline(name="customers", source_system="crm", source_entity="customer", source=source,
                        target_system="erp", target_entity="customer",
                        target=MemoryConnector(MemorySettings(system=f"erp-{tag}", entities={"customer": "number"}),
                                               SystemContext(name="erp")),
                        plan=CustomerPlan(), page_size=4, batch_size=2, write_concurrency=2)
    store = Store(f"sqlite:///{tmp_path}/state.db")
    chunk_task = sync.sync_pages.with_options(retries=2, retry_delay_seconds=0)

    @flow(name="read-fails-mid-chunk", persist_result=False)
    def one_run() -> None:
        run_pipeline(pipeline, store, pages_step=sync.in_chunks(chunk_task))

    try:
        state = one_run(return_state=True)
        assert state.is_failed()
        assert source.reads == 1  # not retried: a retry would have read again
        # The two pages read before the failure were delivered and committed, the cursor after them.
        assert len(erp.all("customer")) == 8
        cursor = store.get_cursor("customers")
        assert cursor is not None and cursor.id == crm_ids(crm)[7]
        assert store.recent_runs("customers", 1)[0].status == "failed"
    finally:
        store.close()


def crm_ids(crm: object) -> list[str]:
    return [r.id for r in sorted(crm.all("customer"), key=lambda r: (r.updated_at, r.id))]  # type: ignore[attr-defined]


def test_the_flow_engine_does_not_wait_for_its_heartbeat_thread() -> None:
    """flows/sync.py tells Prefect's sync engine not to join the heartbeat thread (0-1 s a flow run); a
    Prefect without that hook fails here rather than silently waiting again."""
    send = prefect.flow_engine._send_heartbeats
    assert sync.HEARTBEATS_UNJOINED
    assert isinstance(send, functools.partial) and send.keywords == {"join_on_exit": False}


def test_a_recorded_server_that_does_not_answer_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    record_server(tmp_path, f"http://127.0.0.1:{free_port()}/api")  # what a SIGKILLed serve leaves
    started = time.monotonic()
    assert running_server(tmp_path) is None
    assert attach_to_serve(tmp_path) is None and "PREFECT_API_URL" not in os.environ
    assert time.monotonic() - started < 2
    assert running_server(tmp_path / "nothing-here") is None


CONFIG = """\
version: 1
store: {{url: "sqlite:///{folder}/erphub.db"}}
systems:
  crm: {{connector: memory, settings: {{system: crm, entities: {{customer: customer_code}}}}}}
  erp: {{connector: memory, settings: {{system: erp, entities: {{customer: number}}}}}}
pipelines:
  customers:
    source: {{system: crm, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: customer.yaml
    schedule: "0 0 1 1 *"
"""


@pytest.mark.slow
def test_a_one_shot_run_uses_the_prefect_server_of_the_running_serve(tmp_path: Path,
                                                                     prefect_db_template: Path) -> None:
    (tmp_path / "customer.yaml").write_text(textwrap.dedent("""\
        source: customer
        target: customer
        key: number
        fields:
          number: {from: customer_code}
        """), encoding="utf-8")
    config = tmp_path / "erphub.yaml"
    config.write_text(CONFIG.format(folder=tmp_path), encoding="utf-8")
    state = tmp_path / ".erphub"
    seed_prefect_home(state / "prefect", prefect_db_template)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "erphub.cli", "serve", "--config", str(config), "--host",
                              "127.0.0.1", "--port", str(port)], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("wb"))
    try:
        deadline = time.monotonic() + 180  # the Prefect server child's start (10-30 s here)
        health: dict[str, object] = {}
        while health.get("schedules") != "running":
            assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        api = str(health["prefect_api"])
        assert (state / SERVER_FILE).read_text(encoding="utf-8").strip() == api
        assert (state / SERVER_FILE).stat().st_mode & 0o077 == 0

        # An embedded server given no time to answer fails the run: this one must not start one.
        no_embedded = {**env, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"}
        run = subprocess.run([sys.executable, "-m", "erphub.cli", "run", "customers", "--config", str(config),
                              "--engine", "prefect", "--json", "--log-format", "json", "--log-level", "INFO"],
                             cwd=tmp_path, env=no_embedded, capture_output=True, text=True, timeout=300, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        assert "flow runs on erphub serve's Prefect server" in run.stderr and api in run.stderr
        flow_runs = httpx.post(f"{api}/flow_runs/filter", timeout=10, json={
            "flow_runs": {"tags": {"all_": ["erphub-pipeline:customers"]}}}).json()
        assert [r["state_type"] for r in flow_runs] == ["COMPLETED"]
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
    assert serve.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert not (state / SERVER_FILE).exists()  # a stopped serve leaves no URL behind
