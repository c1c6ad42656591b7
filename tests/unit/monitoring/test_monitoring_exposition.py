"""The /metrics endpoint: registry metrics plus store-backed gauges, each series exactly once."""

from __future__ import annotations

from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families

from erphub.monitoring import metrics
from erphub.monitoring.exposition import (
    STORE_GAUGES,
    StoreStateReader,
    make_metrics_app,
    prime_series,
    render_metrics,
)
from erphub.sandbox.serve import SandboxServer
from tests.unit.monitoring.fakes import FakeStoreState


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def _v(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _state() -> FakeStoreState:
    return FakeStoreState(
        open_letters={"expo_orders": 3},
        oldest_age={"expo_orders": 90_000.0, "expo_ghost": 50.0},  # ghost has no open letters
        times={"expo_orders": (1_700_000_000.0, 1_700_003_600.0), "expo_new": (None, 1_700_000_100.0)},
        intervals={"expo_orders": 3600.0, "expo_new": 900.0},
        drift={"expo_orders": (1_700_000_500.0, {"missing": 2, "different": 0, "extra": 1})},
    )


def test_store_gauges_come_from_the_reader_and_hide_the_registry_copies() -> None:
    # The in-process gauges say something else; the store is the truth.
    metrics.observe_run("expo_orders", ok=True, duration_s=1.5, finished_at=42.0)
    metrics.dead_letters.labels(pipeline="expo_orders").set(99)
    metrics.count_records("expo_orders", "created", 7)
    metrics.observe_drift("expo_orders", {"missing": 9}, finished_at=42.0)

    samples = _samples(render_metrics(_state()).decode())

    assert _v(samples, "erphub_dead_letters", pipeline="expo_orders") == 3
    assert _v(samples, "erphub_dead_letters", pipeline="expo_new") == 0  # known pipeline, none open
    assert _v(samples, "erphub_dead_letters_oldest_age_seconds", pipeline="expo_orders") == 90_000
    assert _v(samples, "erphub_dead_letters_oldest_age_seconds", pipeline="expo_ghost") is None
    assert _v(samples, "erphub_last_success_timestamp_seconds", pipeline="expo_orders") == 1_700_000_000
    assert _v(samples, "erphub_last_run_timestamp_seconds", pipeline="expo_orders") == 1_700_003_600
    # never succeeded: no last-success series at all
    assert _v(samples, "erphub_last_success_timestamp_seconds", pipeline="expo_new") is None
    assert _v(samples, "erphub_last_run_timestamp_seconds", pipeline="expo_new") == 1_700_000_100
    assert _v(samples, "erphub_pipeline_schedule_interval_seconds", pipeline="expo_new") == 900
    # what the last reconcile left, as the store keeps it (a serve restart empties the metrics folder)
    assert _v(samples, "erphub_drift_records", pipeline="expo_orders", kind="missing") == 2
    assert _v(samples, "erphub_drift_records", pipeline="expo_orders", kind="extra") == 1
    assert _v(samples, "erphub_last_reconcile_timestamp_seconds", pipeline="expo_orders") == 1_700_000_500
    # registry metrics still there
    assert _v(samples, "erphub_records_total", pipeline="expo_orders", outcome="created") == 7
    assert _v(samples, "erphub_runs_total", pipeline="expo_orders", status="success") == 1
    # each store-backed family appears once in the exposition (no registry duplicate)
    families = Counter(f.name for f in text_string_to_metric_families(render_metrics(_state()).decode()))
    for name in STORE_GAUGES:
        assert families[name] == 1, name


def test_without_a_reader_the_in_process_gauges_are_exposed() -> None:
    metrics.observe_run("expo_oneshot", ok=False, duration_s=0.2, finished_at=1234.0)
    samples = _samples(render_metrics(None).decode())
    assert _v(samples, "erphub_last_run_timestamp_seconds", pipeline="expo_oneshot") == 1234
    assert _v(samples, "erphub_runs_total", pipeline="expo_oneshot", status="failed") == 1


def test_fake_reader_satisfies_the_protocol() -> None:
    assert isinstance(FakeStoreState(), StoreStateReader)


def test_prime_series_creates_zero_counters() -> None:
    prime_series(pipelines=["expo_primed"], systems=["expo_sys"], webhook_sources=["expo_src"])
    samples = _samples(render_metrics(None).decode())
    assert _v(samples, "erphub_runs_total", pipeline="expo_primed", status="failed") == 0
    assert _v(samples, "erphub_auth_failures_total", system="expo_sys") == 0
    assert _v(samples, "erphub_http_requests_total", system="expo_sys", status_class="5xx") == 0
    assert _v(samples, "erphub_webhook_events_total", source="expo_src", outcome="bad_signature") == 0


def test_metrics_endpoint_reads_the_store_on_every_scrape() -> None:
    state = _state()
    with SandboxServer(make_metrics_app(state)) as server:
        first = httpx.get(server.base_url + "/metrics", timeout=5)
        state.open_letters["expo_orders"] = 5  # a new dead letter, no restart
        second = httpx.get(server.base_url + "/metrics", timeout=5)
        health = httpx.get(server.base_url + "/healthz", timeout=5)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert _v(_samples(first.text), "erphub_dead_letters", pipeline="expo_orders") == 3
    assert _v(_samples(second.text), "erphub_dead_letters", pipeline="expo_orders") == 5
    assert state.reads == 2
    assert health.status_code == 200


def test_scrape_fails_loudly_when_the_store_is_unreachable() -> None:
    state = _state()
    state.fail_with = ConnectionError("store down")
    with SandboxServer(make_metrics_app(state)) as server:
        response = httpx.get(server.base_url + "/metrics", timeout=5)
    assert response.status_code == 500  # Prometheus marks the target down: `up == 0`
    assert "erphub_" not in response.text
