"""The ``/metrics`` endpoint: erphub's registry plus gauges read from the store at scrape time.

The alert-facing gauges (open dead letters and their age, last success, last run, schedule interval,
first seen, and the drift the last reconcile left) must be right after a restart and across processes,
so the store is their truth: `StoreCollector` asks a `StoreStateReader` on every scrape. The same names
also exist as in-process gauges in `erphub.monitoring.metrics` (a one-shot run sets them before
pushing); `MetricsView` drops those from the registry's output whenever a store reader is present, so
each series is exposed exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from erphub.core.outcomes import OUTCOMES
from erphub.monitoring import metrics, multiprocess
from erphub.monitoring.metrics import REGISTRY

DEAD_LETTERS = "erphub_dead_letters"
DEAD_LETTERS_OLDEST_AGE = "erphub_dead_letters_oldest_age_seconds"
LAST_SUCCESS = "erphub_last_success_timestamp_seconds"
LAST_RUN = "erphub_last_run_timestamp_seconds"
SCHEDULE_INTERVAL = "erphub_pipeline_schedule_interval_seconds"
CONFIGURED = "erphub_pipeline_configured_timestamp_seconds"
DRIFT = "erphub_drift_records"
LAST_RECONCILE = "erphub_last_reconcile_timestamp_seconds"

# The names whose truth is the store; the registry's same-named gauges are hidden when a reader exists.
STORE_GAUGES = frozenset({DEAD_LETTERS, DEAD_LETTERS_OLDEST_AGE, LAST_SUCCESS, LAST_RUN, SCHEDULE_INTERVAL,
                          CONFIGURED, DRIFT, LAST_RECONCILE})


@runtime_checkable
class StoreStateReader(Protocol):
    """What the exposition needs from the store; called on every scrape, so keep each one query."""

    def open_dead_letters_by_pipeline(self) -> dict[str, int]:
        """Open (not replayed, not discarded) dead letters per pipeline."""
        ...

    def oldest_open_dead_letter_age_by_pipeline(self) -> dict[str, float]:
        """Seconds since the oldest open dead letter of each pipeline was created (pipelines with
        open dead letters only)."""
        ...

    def last_run_times(self) -> dict[str, tuple[float | None, float | None]]:
        """Per pipeline: (unix time the last successful run finished, unix time the last run
        finished whatever its outcome). A run in progress does not count until it finishes."""
        ...

    def schedule_intervals(self) -> dict[str, float]:
        """Expected seconds between runs of each scheduled pipeline (from its cron)."""
        ...

    def configured_times(self) -> dict[str, float]:
        """Unix time the store first saw each pipeline in the config (for a scheduled one, the start
        of the clock for "never succeeded")."""
        ...

    def last_drift(self) -> dict[str, tuple[float, dict[str, int]]]:
        """Per reconciled pipeline: (unix time its last reconcile finished, records that reconcile left
        by kind: missing, different, extra)."""
        ...


class StoreCollector(Collector):
    """Builds the store-backed gauges at scrape time."""

    def __init__(self, reader: StoreStateReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[Metric]:
        # Read everything first: if the store is unreachable the scrape fails loudly (Prometheus marks
        # the target down) instead of silently exposing a partial picture.
        open_letters = self._reader.open_dead_letters_by_pipeline()
        oldest = self._reader.oldest_open_dead_letter_age_by_pipeline()
        times = self._reader.last_run_times()
        intervals = self._reader.schedule_intervals()
        configured = self._reader.configured_times()
        drift = self._reader.last_drift()

        # Every known pipeline gets a dead-letter series, 0 included: "rose over the last hour" needs
        # the series to exist before the first dead letter.
        pipelines = sorted(set(open_letters) | set(times) | set(intervals) | set(configured))
        dl = GaugeMetricFamily(DEAD_LETTERS, "Open dead letters of a pipeline (read from the store).",
                               labels=["pipeline"])
        for p in pipelines:
            dl.add_metric([p], float(open_letters.get(p, 0)))
        yield dl

        age = GaugeMetricFamily(DEAD_LETTERS_OLDEST_AGE,
                                "Age in seconds of the oldest open dead letter of a pipeline.",
                                labels=["pipeline"])
        for p, seconds in sorted(oldest.items()):
            if open_letters.get(p, 0) > 0:
                age.add_metric([p], float(seconds))
        yield age

        success = GaugeMetricFamily(LAST_SUCCESS, "Unix time of the pipeline's last successful run.",
                                    labels=["pipeline"])
        last = GaugeMetricFamily(LAST_RUN, "Unix time of the pipeline's last run, whatever its outcome.",
                                 labels=["pipeline"])
        for p, (ok_at, ran_at) in sorted(times.items()):
            if ok_at is not None:
                success.add_metric([p], float(ok_at))
            if ran_at is not None:
                last.add_metric([p], float(ran_at))
        yield success
        yield last

        sched = GaugeMetricFamily(SCHEDULE_INTERVAL,
                                  "Expected seconds between runs, from the pipeline's cron schedule.",
                                  labels=["pipeline"])
        for p, seconds in sorted(intervals.items()):
            sched.add_metric([p], float(seconds))
        yield sched

        # Only pipelines scheduled now: a pipeline taken off its schedule must not page as stale.
        seen = GaugeMetricFamily(CONFIGURED, "Unix time the store first saw the scheduled pipeline in the config.",
                                 labels=["pipeline"])
        for p, at in sorted(configured.items()):
            if p in intervals:
                seen.add_metric([p], float(at))
        yield seen

        # From the store, not the metrics folder: `erphub serve` empties that folder when it starts, and
        # ErphubDrift must keep paging for drift a one-shot reconcile found before the restart.
        left = GaugeMetricFamily(DRIFT, "Records on which source and target disagreed after the pipeline's last "
                                 "reconcile (after its repair), by kind (missing, different, extra; read from "
                                 "the store).", labels=["pipeline", "kind"])
        reconciled = GaugeMetricFamily(LAST_RECONCILE, "Unix time of the pipeline's last completed reconcile.",
                                       labels=["pipeline"])
        for p, (at, kinds) in sorted(drift.items()):
            for kind, n in sorted(kinds.items()):
                left.add_metric([p, kind], float(n))
            reconciled.add_metric([p], at)
        yield left
        yield reconciled


class MetricsView:
    """A registry-like object (``collect()``) for `generate_latest` and `push_to_gateway`.

    It yields the registry's metrics, minus the store gauges when a store reader is given (then
    `StoreCollector` supplies them), and optionally only the samples of one pipeline.
    """

    def __init__(
        self,
        reader: StoreStateReader | None = None,
        *,
        registry: Collector | None = None,
        only_pipeline: str | None = None,
    ) -> None:
        # In multiprocess mode the truth is every process's file in the metrics folder, this
        # process's included; otherwise this process's registry.
        shared = multiprocess.folder()
        if registry is None:
            registry = multiprocess.FolderCollector(shared) if shared is not None else REGISTRY
        self._registry = registry
        self._store = StoreCollector(reader) if reader is not None else None
        self._only = only_pipeline

    def collect(self) -> Iterator[Metric]:
        sources: Iterable[Metric] = self._registry.collect()
        for metric in sources:
            if self._store is not None and metric.name in STORE_GAUGES:
                continue
            yield self._filtered(metric)
        if self._store is not None:
            for metric in self._store.collect():
                yield self._filtered(metric)

    def _filtered(self, metric: Metric) -> Metric:
        if self._only is None:
            return metric
        kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
        kept.samples = [s for s in metric.samples if s.labels.get("pipeline", self._only) == self._only]
        return kept


def prime_series(
    pipelines: Iterable[str] = (), systems: Iterable[str] = (), webhook_sources: Iterable[str] = ()
) -> None:
    """Create the counters' label children at 0 when a long-running process starts.

    A counter series that first appears already at 1 hides its first increment from ``increase()``,
    so without this the first failed run or the first auth failure after a start would go unseen.
    """
    for p in pipelines:
        for status in ("success", "failed"):
            metrics.runs_total.labels(pipeline=p, status=status)
        for outcome in OUTCOMES:
            metrics.records_total.labels(pipeline=p, outcome=outcome)
    for s in systems:
        metrics.auth_failures_total.labels(system=s)
        metrics.rate_limited_total.labels(system=s)
        for cls in ("2xx", "4xx", "5xx", "error"):
            metrics.http_requests_total.labels(system=s, status_class=cls)
    for src in webhook_sources:
        for verdict in ("accepted", "duplicate", "bad_signature", "stale", "replayed", "malformed"):
            metrics.webhook_events_total.labels(source=src, outcome=verdict)


def render_metrics(reader: StoreStateReader | None = None) -> bytes:
    """The text exposition format of everything erphub exposes."""
    return generate_latest(MetricsView(reader))


def make_metrics_app(state_reader: StoreStateReader | None) -> Starlette:
    """An ASGI app serving ``GET /metrics`` (and ``/healthz`` for probes)."""
    view = MetricsView(state_reader)

    async def metrics(request: Request) -> Response:
        # Store reads are synchronous and quick; a thread keeps the event loop free anyway.
        from starlette.concurrency import run_in_threadpool

        body = await run_in_threadpool(generate_latest, view)
        # 0.0.4: the text format every Prometheus 2.x parses (also what prometheus-client serves
        # when the scraper states no preference).
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def healthz(request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])
