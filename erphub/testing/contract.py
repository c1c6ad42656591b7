"""The one contract suite every connector passes, importable so a connector kept elsewhere can run it.

Run it from a test module of your own project: import the suite (its tests and fixtures) and give
it a `harness` fixture yielding an `erphub.testing.ContractHarness` for your connector:

    # tests/test_contract.py
    import pytest
    from erphub.testing.contract import *  # noqa: F403 (the suite's tests and fixtures)

    from my_connector.testing import make_harness

    @pytest.fixture(scope="session")
    def harness():
        with make_harness() as instance:
            yield instance

then `pytest tests/test_contract.py` (call `pytest.register_assert_rewrite("erphub.testing.contract")`
in your conftest.py first for pytest's detailed assertion messages). What it checks:

- an incremental read returns each change exactly once across pages, including many records
  sharing one timestamp across a page boundary, an empty read and a page exactly full, and a
  read resumed from any checkpoint returns exactly the rest;
- a create retried after a lost answer (the server applied it) leaves one record, and so does
  the same write sent again by a fresh connector (a rerun after a crash);
- a bad record fails alone while the rest of its batch lands;
- `erphub reconcile` with the connector as the target finds a missing, a different and an extra
  record by reading the server, its repair fixes them through the write path, and a second pass is clean;
- `--full` (`run_pipeline(full=True)`) compares with the target's current records, so a change made
  directly in the target is found different and written again, and a second full run is clean;
- `fetch` by id (SupportsFetch) answers each record exactly as a read gives it, a written record as
  the server now holds it, and leaves out ids the server does not hold;
- auth renews itself mid-run;
- the configured rate limit is never exceeded, measured from the server's request log;
- secrets never appear in captured logs (stdlib logging, structlog, stdout/stderr) or errors;
- discovery (`SupportsDiscovery`) returns the entity's fields as the server has them, including a
  custom field the harness configured, and a mapping that uses that custom field moves its value;
- an update of an order with lines keeps the identities of the lines it keeps, adds the new one.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from erphub.connectors.base import SupportsFetch, SystemContext
from erphub.connectors.discovery import SupportsDiscovery
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.core.records import Cursor, Page, WriteRequest
from erphub.engine import Pipeline, run_pipeline
from erphub.mappings.compiler import compile_text
from erphub.mappings.plan import Mapped, Rejected, Skipped
from erphub.reconcile import differing_fields, reconcile
from erphub.store import Store
from erphub.testing.harness import (
    DISCOVERY,
    EXPIRE_AUTH,
    LINE_IDENTITY,
    LOG_SECRETS,
    LOST_RESPONSE,
    RATE_LIMIT,
    ContractHarness,
)

# What `from erphub.testing.contract import *` brings into a test module: the tests and their fixtures.
__all__ = [
    "connector",
    "test_a_mapping_using_a_custom_field_moves_it",
    "test_an_order_update_keeps_its_line_identities",
    "test_auth_renews_itself_mid_run",
    "test_bad_record_fails_alone",
    "test_configured_rate_limit_is_never_exceeded_at_the_server",
    "test_discovery_returns_the_configured_fields_including_a_custom_one",
    "test_empty_read",
    "test_fetch_by_id_answers_what_the_server_holds",
    "test_full_run_judges_by_the_target_and_repairs_a_change_made_there",
    "test_incremental_read_returns_each_change_once_across_pages",
    "test_read_of_exactly_one_full_page",
    "test_reconcile_finds_and_repairs_drift_on_the_server",
    "test_secrets_never_appear_in_logs_or_errors",
    "test_write_retried_after_lost_response_is_not_duplicated",
    "window",
]

_SESSION_BASE = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
_windows = itertools.count()


class Window:
    """A private stretch of past time for one test, so tests never see each other's records."""

    def __init__(self) -> None:
        self.start = _SESSION_BASE + timedelta(minutes=10 * next(_windows))
        self.end = self.start + timedelta(minutes=5)

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)


@pytest.fixture()
def window() -> Window:
    return Window()


@pytest.fixture()
def connector(harness: ContractHarness) -> Iterator[Any]:
    """A fresh connector from the harness, closed after the test."""
    conn = harness.connector()
    try:
        yield conn
    finally:
        conn.close()


def max_in_window(times: Sequence[float], window_s: float = 1.0) -> int:
    """Most requests seen in any half-open window [t, t + window_s).

    The sandboxes count their own requests with the same ten lines (erphub.sandbox.faults): kept twice
    on purpose, since this suite must run without the sandboxes and the sandboxes import nothing of ours.
    """
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def needs(harness: ContractHarness, capability: str) -> None:
    if capability not in harness.capabilities:
        reasons: dict[str, str] = getattr(harness, "capability_reasons", {})
        pytest.skip(f"{harness.kind}: {reasons.get(capability, f'harness does not offer {capability}')}")


def read(conn: Any, harness: ContractHarness, since: Cursor | None, window: Window) -> list[Page]:
    until = Cursor(window.end)
    return list(conn.read_changes(harness.entity, since, page_size=harness.page_size_hint(), until=until))


def ids_of(pages: Sequence[Page]) -> list[str]:
    return [record.id for page in pages for record in page.records]


def key(prefix: str) -> str:
    return f"CT-{prefix}-{uuid.uuid4().hex[:8].upper()}"


# ---- incremental reads ---------------------------------------------------------------------
def test_incremental_read_returns_each_change_once_across_pages(
    harness: ContractHarness, connector: Any, window: Window
) -> None:
    page = harness.page_size_hint()
    before = harness.seed(2, updated_at=window.at(1))
    # More than two pages' worth sharing ONE timestamp: page boundaries fall inside the group.
    same_time = harness.seed(2 * page + 1, updated_at=window.at(2))
    after = harness.seed(1, updated_at=window.at(3))
    expected = before + same_time + after

    pages = read(connector, harness, Cursor(window.start), window)
    got = ids_of(pages)
    assert sorted(got) == sorted(expected), "every change, nothing else"
    assert len(got) == len(set(got)), "no change twice"
    assert len(pages) >= 3
    assert pages[-1].checkpoint is not None, "the last page carries the high-water mark"

    # Resuming from any checkpoint yields exactly what came after it.
    seen: list[str] = []
    for p in pages:
        seen += [r.id for r in p.records]
        if p.checkpoint is None:
            continue
        rest = ids_of(read(connector, harness, p.checkpoint, window))
        assert sorted(seen + rest) == sorted(expected)
        assert not set(seen) & set(rest)

    # After the last checkpoint only new changes come back.
    checkpoint = pages[-1].checkpoint
    assert ids_of(read(connector, harness, checkpoint, window)) == []
    newer = harness.seed(2, updated_at=window.at(4))
    assert sorted(ids_of(read(connector, harness, checkpoint, window))) == sorted(newer)


def test_read_of_exactly_one_full_page(harness: ContractHarness, connector: Any, window: Window) -> None:
    page = harness.page_size_hint()
    expected = harness.seed(page, updated_at=window.at(1))
    pages = read(connector, harness, Cursor(window.start), window)
    assert sorted(ids_of(pages)) == sorted(expected)
    assert pages[-1].checkpoint is not None
    assert ids_of(read(connector, harness, pages[-1].checkpoint, window)) == []


def test_empty_read(harness: ContractHarness, connector: Any, window: Window) -> None:
    pages = read(connector, harness, Cursor(window.start), window)
    assert ids_of(pages) == []
    assert all(p.checkpoint is None or p.checkpoint.updated_at >= window.start for p in pages)


# ---- writes --------------------------------------------------------------------------------
def test_write_retried_after_lost_response_is_not_duplicated(harness: ContractHarness, connector: Any) -> None:
    needs(harness, LOST_RESPONSE)
    k = key("LOST")
    request = harness.write_request(1, key=k)
    harness.lose_next_write_response()
    [result] = connector.write(harness.entity, [request])
    assert result.ok, result.error
    assert harness.count_with_key(k) == 1

    # A rerun after a crash sends the same write again, from a fresh connector, without the link.
    rerun = harness.connector()
    try:
        [again] = rerun.write(harness.entity, [harness.write_request(1, key=k)])
    finally:
        rerun.close()
    assert again.ok, again.error
    assert again.target_id == result.target_id
    assert harness.count_with_key(k) == 1


def test_bad_record_fails_alone(harness: ContractHarness, connector: Any) -> None:
    k1, kb, k3 = key("OK1"), key("BAD"), key("OK3")
    batch = [harness.write_request(1, key=k1), harness.bad_write_request(2, key=kb), harness.write_request(3, key=k3)]
    results = connector.write(harness.entity, batch)
    assert [r.source_id for r in results] == [r.source_id for r in batch], "one result per request, in order"
    assert results[0].ok and results[2].ok
    assert not results[1].ok and results[1].error is not None and results[1].error.message
    assert harness.count_with_key(k1) == 1 and harness.count_with_key(k3) == 1
    assert harness.count_with_key(kb) == 0
    # The landed records can be found by their key.
    found = connector.lookup(harness.entity, [k1, kb, k3])
    assert found.get(k1) == results[0].target_id and found.get(k3) == results[2].target_id
    assert kb not in found


# ---- fetch by id ---------------------------------------------------------------------------
def test_fetch_by_id_answers_what_the_server_holds(harness: ContractHarness, connector: Any, window: Window) -> None:
    fetcher = connector
    assert isinstance(fetcher, SupportsFetch), f"{harness.kind} cannot fetch records by id"
    seeded = harness.seed(3, updated_at=window.at(1))
    read_back = {r.id: r for p in read(connector, harness, Cursor(window.start), window) for r in p.records}
    absent = "0" * len(seeded[0])  # the shape of a real id, held by no server
    fetched = fetcher.fetch(harness.entity, [*seeded, absent, seeded[0]])
    assert sorted(fetched) == sorted(seeded), "every held id once, the absent one left out"
    for record_id in seeded:
        assert fetched[record_id].id == record_id
        assert fetched[record_id].data == read_back[record_id].data, "a fetch answers what a read answers"
        assert fetched[record_id].updated_at == read_back[record_id].updated_at
    # A record written through the connector is fetched as the server now holds it.
    k = key("FETCH")
    [result] = connector.write(harness.entity, [harness.write_request(5, key=k)])
    assert result.ok, result.error
    assert result.target_id is not None
    [written] = fetcher.fetch(harness.entity, [result.target_id]).values()
    assert written.id == result.target_id
    assert connector.lookup(harness.entity, [k]) == {k: written.id}
    assert fetcher.fetch(harness.entity, []) == {}


# ---- reconcile -----------------------------------------------------------------------------
class _HarnessPlan:
    """A mapping stand-in: source record {n, key} -> the harness's valid write of record n (owns all fields)."""

    owned_fields: frozenset[str] | None = None

    def __init__(self, harness: ContractHarness, key_field: str | None) -> None:
        self.harness = harness
        self.key_field = key_field

    def apply(self, record: Mapping[str, Any]) -> Mapped:
        request = self.harness.write_request(int(record["n"]), key=str(record["key"]))
        return Mapped(dict(request.data), str(record["key"]))


def _memory_source_pipeline(harness: ContractHarness, connector: Any, name: str) -> tuple[Any, Pipeline]:
    """A fresh memory source of `row`s and the pipeline `<name>-<kind>` from it into the harness's entity."""
    source_name = f"{name}-source-{uuid.uuid4().hex[:8]}"
    source = MemoryConnector(MemorySettings(system=source_name, entities={"row": "key"}),
                             SystemContext(name="source"))
    spec = connector.entities()[harness.entity]
    pipeline = Pipeline(name=f"{name}-{harness.kind}", source_system="source", source_entity="row", source=source,
                        target_system=harness.kind, target_entity=harness.entity, target=connector,
                        plan=_HarnessPlan(harness, spec.key_field))
    return memory_system(source_name), pipeline


def test_reconcile_finds_and_repairs_drift_on_the_server(harness: ContractHarness, connector: Any,
                                                          tmp_path: Path) -> None:
    source_system, pipeline = _memory_source_pipeline(harness, connector, "contract")
    keys = {n: key(f"RC{n}") for n in range(1, 5)}
    records = {n: source_system.put("row", {"n": n, "key": keys[n]}) for n in (1, 2, 3)}
    store = Store(f"sqlite:///{tmp_path}/contract.db")
    try:
        assert run_pipeline(pipeline, store).counts["created"] == 3
        assert reconcile(pipeline, store).as_dict()["items"] == [], "just synced: no drift"

        # Behind the hub's back: record 2 changed on the server, record 3 deleted in the source,
        # record 4 new in the source (never synced).
        target_id = store.links_for(pipeline.name, [records[2].id])[records[2].id].target_id
        [changed] = connector.write(harness.entity, [harness.write_request(77, key=keys[2], target_id=target_id)])
        assert changed.ok, changed.error
        del source_system.records["row"][records[3].id]
        source_system.put("row", {"n": 4, "key": keys[4]})
        found = reconcile(pipeline, store)
        kinds = sorted((item.key, item.kind) for item in found.items)
        assert kinds == sorted([(keys[2], "different"), (keys[3], "extra"), (keys[4], "missing")]), kinds
        assert next(i for i in found.items if i.kind == "different").fields, "the differing fields are named"

        repaired = reconcile(pipeline, store, repair=True)
        assert repaired.repaired == 2
        assert [(item.key, item.kind) for item in repaired.left] == [(keys[3], "extra")], "on_delete ignore"
        assert harness.count_with_key(keys[4]) == 1 and harness.count_with_key(keys[2]) == 1
        [now] = connector.fetch(harness.entity, [target_id]).values()
        want = harness.write_request(2, key=keys[2]).data
        assert not differing_fields(pipeline, want, now.data), "the server holds record 2's values again"
        assert [i.kind for i in reconcile(pipeline, store).items] == ["extra"], "second pass: clean but the extra"
    finally:
        store.close()


def test_full_run_judges_by_the_target_and_repairs_a_change_made_there(harness: ContractHarness, connector: Any,
                                                                         tmp_path: Path) -> None:
    source_system, pipeline = _memory_source_pipeline(harness, connector, "contract-full")
    keys = {n: key(f"FULL{n}") for n in (1, 2)}
    records = {n: source_system.put("row", {"n": n, "key": keys[n]}) for n in (1, 2)}
    store = Store(f"sqlite:///{tmp_path}/contract-full.db")
    try:
        assert run_pipeline(pipeline, store).counts["created"] == 2
        # Changed directly in the target: our links still say record 2 is delivered as it is.
        target_id = store.links_for(pipeline.name, [records[2].id])[records[2].id].target_id
        [changed] = connector.write(harness.entity, [harness.write_request(77, key=keys[2], target_id=target_id)])
        assert changed.ok, changed.error
        want = harness.write_request(2, key=keys[2]).data
        [before] = connector.fetch(harness.entity, [target_id]).values()
        assert differing_fields(pipeline, want, before.data), "the target now differs from the source"
        assert run_pipeline(pipeline, store).counts.get("updated", 0) == 0, "an incremental run trusts the links"

        full = run_pipeline(pipeline, store, full=True)
        assert full.counts.get("updated", 0) == 1, full.counts
        assert full.counts.get("unchanged", 0) == 1, full.counts
        [now] = connector.fetch(harness.entity, [target_id]).values()
        assert not differing_fields(pipeline, want, now.data), "the target holds record 2's values again"
        assert harness.count_with_key(keys[2]) == 1
        again = run_pipeline(pipeline, store, full=True)
        assert again.counts.get("updated", 0) == 0 and again.counts.get("unchanged", 0) == 2, again.counts
    finally:
        store.close()


# ---- auth ----------------------------------------------------------------------------------
def test_auth_renews_itself_mid_run(harness: ContractHarness, connector: Any, window: Window) -> None:
    needs(harness, EXPIRE_AUTH)
    expected = harness.seed(2, updated_at=window.at(1))
    assert sorted(ids_of(read(connector, harness, Cursor(window.start), window))) == sorted(expected)
    harness.expire_auth()
    assert sorted(ids_of(read(connector, harness, Cursor(window.start), window))) == sorted(expected)
    harness.expire_auth()
    k = key("AUTH")
    [result] = connector.write(harness.entity, [harness.write_request(7, key=k)])
    assert result.ok, result.error
    assert harness.count_with_key(k) == 1


# ---- rate limit ----------------------------------------------------------------------------
def test_configured_rate_limit_is_never_exceeded_at_the_server(harness: ContractHarness) -> None:
    needs(harness, RATE_LIMIT)
    limit = 4.0
    conn = harness.connector(rate_limit_per_second=limit)
    baseline = len(harness.request_times())
    try:
        for _ in range(10):
            conn.check()
    finally:
        conn.close()
    times = harness.request_times()[baseline:]
    assert len(times) >= 2 * limit, "enough requests to measure a rate"
    assert max_in_window(times, 1.0) <= limit


# ---- secrets -------------------------------------------------------------------------------
def test_secrets_never_appear_in_logs_or_errors(
    harness: ContractHarness, window: Window, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    needs(harness, LOG_SECRETS)
    secrets = [s for s in harness.secret_values if s]
    assert secrets, "the harness names the secret to look for"
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with capture_logs() as events:
        logging.getLogger("erphub.contract").warning("capture check: stdlib")
        structlog.get_logger("erphub.contract").warning("capture check: structlog")
        conn = harness.connector()
        try:
            conn.check()
            harness.seed(1, updated_at=window.at(1))
            read(conn, harness, Cursor(window.start), window)
            if LOST_RESPONSE in harness.capabilities:
                harness.lose_next_write_response()  # exercise the retry path's log lines
            if EXPIRE_AUTH in harness.capabilities:
                harness.expire_auth()  # and the re-login path's
            results = conn.write(
                harness.entity,
                [harness.write_request(1, key=key("LOG")), harness.bad_write_request(2, key=key("LOGB"))],
            )
            texts += [repr(r) for r in results]
        except Exception as exc:  # an error message is output too
            texts.append(repr(exc))
            raise
        finally:
            conn.close()
    out = capsys.readouterr()
    texts += [caplog.text, out.out, out.err, *(repr(e) for e in events)]
    blob = "\n".join(texts)
    assert "capture check: stdlib" in blob and "capture check: structlog" in blob, "log capture works"
    for secret in secrets:
        assert secret not in blob


# ---- schema discovery and custom fields ----------------------------------------------------
def test_discovery_returns_the_configured_fields_including_a_custom_one(
    harness: ContractHarness, connector: Any
) -> None:
    needs(harness, DISCOVERY)
    assert isinstance(connector, SupportsDiscovery), "a DISCOVERY harness's connector implements discover()"
    found = connector.discover([harness.entity])
    fields = found[harness.entity]["fields"]
    conn: Any = connector
    custom: str = harness.custom_field  # type: ignore[attr-defined]
    assert custom in fields, f"the custom field {custom!r} the harness configured is discovered"
    key_field = conn.entities()[harness.entity].key_field
    assert key_field is None or key_field in fields
    sample = harness.write_request(1, key=key("DISC"))
    assert {name for name in sample.data if name in fields} == set(sample.data), "every field a write uses"


def test_a_mapping_using_a_custom_field_moves_it(harness: ContractHarness, connector: Any) -> None:
    needs(harness, DISCOVERY)
    custom: str = harness.custom_field  # type: ignore[attr-defined]
    k = key("CUSTOM")
    base = harness.write_request(1, key=k)
    spec = connector.entities()[harness.entity]
    # The harness's other fields (and the match key) go as constants; the custom one comes from the source.
    constants = {**base.data, **({spec.key_field: k} if spec.key_field else {})}
    consts = "".join(f"  {name}: {{const: {json.dumps(value, ensure_ascii=False)}}}\n"
                     for name, value in constants.items() if name != custom)
    key_line = f"key: {spec.key_field}\n" if spec.key_field else ""
    plan = compile_text(f"source: src\ntarget: {harness.entity}\n{key_line}fields:\n{consts}"
                        f"  {custom}: {{from: region}}\n", target=spec)
    outcome = plan.apply({"region": "华东-77"})
    assert not isinstance(outcome, Rejected | Skipped), outcome
    request = WriteRequest(base.source_id, k, None, outcome.data, base.idempotency_key)
    [result] = connector.write(harness.entity, [request])
    assert result.ok, result.error
    assert harness.custom_value(k) == "华东-77"  # type: ignore[attr-defined]


# ---- line identity -------------------------------------------------------------------------
def test_an_order_update_keeps_its_line_identities(harness: ContractHarness, connector: Any) -> None:
    needs(harness, LINE_IDENTITY)
    entity: str = harness.order_entity  # type: ignore[attr-defined]
    k = key("LINES")
    [created] = connector.write(entity, [harness.order_request(1, key=k, quantities=[1, 2])])  # type: ignore[attr-defined]
    assert created.ok, created.error
    before = harness.line_ids(created.target_id)  # type: ignore[attr-defined]
    assert len(before) == 2
    changed = harness.order_request(1, key=k, quantities=[5, 6, 7], target_id=created.target_id)  # type: ignore[attr-defined]
    [updated] = connector.write(entity, [changed])
    assert updated.ok, updated.error
    after = harness.line_ids(created.target_id)  # type: ignore[attr-defined]
    assert after[:2] == before, "the lines kept keep their ids"
    assert len(after) == 3 and after[2] not in before, "the new line is new"
