"""Every erphub metric, in one place, under the names dashboards and alerts rely on.

Metrics live in their own `REGISTRY` (not prometheus-client's global one) so a process can
expose exactly erphub's series and tests can read values without cross-talk. Gauges that must be
right after a restart (open dead letters, last success, drift left by the last reconcile) are also
computed from the store at scrape time by `erphub.monitoring.exposition`.

In multiprocess mode (`erphub.monitoring.multiprocess`) every process writes its counters to the
shared metrics folder and `/metrics` sums them; the gauges say how to merge processes
(``multiprocess_mode``): timestamps take the newest, dead letters the most recent value.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

records_total = Counter(
    "erphub_records",
    "Records handled by a pipeline, by outcome (read, created, updated, unchanged, skipped, dead_lettered).",
    ["pipeline", "outcome"],
    registry=REGISTRY,
)
runs_total = Counter(
    "erphub_runs", "Pipeline runs by final status (success or failed).", ["pipeline", "status"], registry=REGISTRY
)
run_duration_seconds = Histogram(
    "erphub_run_duration_seconds",
    "Wall time of one pipeline run.",
    ["pipeline"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
last_success_timestamp = Gauge(
    "erphub_last_success_timestamp_seconds",
    "Unix time of the pipeline's last successful run.",
    ["pipeline"],
    registry=REGISTRY,
    multiprocess_mode="max",
)
last_run_timestamp = Gauge(
    "erphub_last_run_timestamp_seconds",
    "Unix time of the pipeline's last run, whatever its outcome.",
    ["pipeline"],
    registry=REGISTRY,
    multiprocess_mode="max",
)
schedule_interval_seconds = Gauge(
    "erphub_pipeline_schedule_interval_seconds",
    "Expected seconds between runs, from the pipeline's cron schedule.",
    ["pipeline"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
dead_letters = Gauge(
    "erphub_dead_letters", "Open dead letters of a pipeline (read from the store).", ["pipeline"], registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
http_requests_total = Counter(
    "erphub_http_requests",
    "HTTP requests to external systems by status class (2xx, 4xx, 5xx, error).",
    ["system", "status_class"],
    registry=REGISTRY,
)
http_retries_total = Counter(
    "erphub_http_retries",
    "HTTP retries by reason (timeout, connect, 5xx, rate_limited, session_expired).",
    ["system", "reason"],
    registry=REGISTRY,
)
rate_limited_total = Counter(
    "erphub_rate_limited",
    "Answers that said 'slow down' (429 or the vendor's own throttle code); a state, not an error.",
    ["system"],
    registry=REGISTRY,
)
http_request_duration_seconds = Histogram(
    "erphub_http_request_duration_seconds",
    "Duration of HTTP requests to external systems.",
    ["system"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
auth_failures_total = Counter(
    "erphub_auth_failures", "Credentials rejected by a system.", ["system"], registry=REGISTRY
)
webhook_events_total = Counter(
    "erphub_webhook_events",
    "Webhook deliveries by outcome (accepted, duplicate, bad_signature, stale, replayed, malformed).",
    ["source", "outcome"],
    registry=REGISTRY,
)
conflicts_total = Counter(
    "erphub_conflicts",
    "Two-way field conflicts by the rule that resolved them (owner_wins, newest_wins, held).",
    ["pipeline", "rule"],
    registry=REGISTRY,
)


drift_records = Gauge(
    "erphub_drift_records",
    "Records on which source and target disagreed after the pipeline's last reconcile (after its repair), "
    "by kind (missing, different, extra).",
    ["pipeline", "kind"],
    registry=REGISTRY,
    # The last reconcile says what is left, whichever process ran it. /metrics with a store reads the
    # store's copy (`exposition.StoreCollector`): serve's restart empties the metrics folder.
    multiprocess_mode="mostrecent",
)
last_reconcile_timestamp = Gauge(
    "erphub_last_reconcile_timestamp_seconds",
    "Unix time of the pipeline's last completed reconcile.",
    ["pipeline"],
    registry=REGISTRY,
    multiprocess_mode="max",
)

DRIFT_KINDS = ("missing", "different", "extra")


def observe_drift(pipeline: str, counts: dict[str, int], *, finished_at: float) -> None:
    """What a reconcile left: every kind is set (0 included) so a repaired drift clears its series."""
    for kind in DRIFT_KINDS:
        drift_records.labels(pipeline, kind).set(counts.get(kind, 0))
    last_reconcile_timestamp.labels(pipeline).set(finished_at)


def status_class(status: int | None) -> str:
    """'2xx' / '4xx' / '5xx', or 'error' when no HTTP answer came back."""
    if status is None:
        return "error"
    return f"{status // 100}xx"


def count_records(pipeline: str, outcome: str, n: int = 1) -> None:
    if n:
        records_total.labels(pipeline=pipeline, outcome=outcome).inc(n)


def observe_run(pipeline: str, *, ok: bool, duration_s: float, finished_at: float) -> None:
    runs_total.labels(pipeline=pipeline, status="success" if ok else "failed").inc()
    run_duration_seconds.labels(pipeline=pipeline).observe(duration_s)
    last_run_timestamp.labels(pipeline=pipeline).set(finished_at)
    if ok:
        last_success_timestamp.labels(pipeline=pipeline).set(finished_at)


def observe_http(system: str, status: int | None, duration_s: float) -> None:
    http_requests_total.labels(system=system, status_class=status_class(status)).inc()
    http_request_duration_seconds.labels(system=system).observe(duration_s)


def count_retry(system: str, reason: str) -> None:
    http_retries_total.labels(system=system, reason=reason).inc()


def count_rate_limited(system: str) -> None:
    rate_limited_total.labels(system=system).inc()


def count_auth_failure(system: str) -> None:
    auth_failures_total.labels(system=system).inc()


def count_webhook(source: str, outcome: str) -> None:
    webhook_events_total.labels(source=source, outcome=outcome).inc()


def count_conflict(pipeline: str, rule: str) -> None:
    conflicts_total.labels(pipeline=pipeline, rule=rule).inc()
