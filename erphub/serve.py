"""`erphub serve`: one process with the HTTP endpoints, the inbox worker and the schedules.

    main thread ── signal handlers (SIGTERM/SIGINT) ── waits, then stops the others in order
    ├── uvicorn thread ── /webhooks/{source}, /metrics, /healthz
    ├── uvicorn thread ── /metrics, /healthz on their own address (only with `metrics.port` set: then
    │                     the public webhook listener serves no /metrics)
    ├── inbox worker thread ── delivers accepted events through their pipelines
    ├── schedules thread ── whatever `schedules` was given: the CLI passes `erphub.flows.server.Schedules`
    │                       (a Prefect server child and Prefect's runner serving a deployment per
    │                       scheduled pipeline); with --no-schedules none, and Prefect is never imported
    └── reconcile thread ── `ReconcileSchedule`: each pipeline's `reconcile: {schedule}` (plain Python, its
                            own Hub so its connectors are not shared with the worker's)

Shutdown: stop taking requests (uvicorn finishes the ones in flight), stop the schedules (Prefect
pauses them), let the worker finish its pass, close connectors and the store. Exit code 0.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

import structlog
import uvicorn
from croniter import croniter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from erphub.config.loader import LoadedConfig
from erphub.config.models import DEFAULT_RECONCILE, ReconcileConfig
from erphub.core.errors import ErphubError
from erphub.core.records import Direction
from erphub.monitoring.exposition import make_metrics_app, prime_series
from erphub.reconcile import Report, reconcile
from erphub.runtime import Hub
from erphub.webhooks import inbox
from erphub.webhooks.receiver import WebhookReceiver, router_from_config, webhook_verifiers
from erphub.webhooks.worker import InboxSettings, InboxWorker

log = structlog.get_logger("erphub.serve")

STARTUP_TIMEOUT_S = 30.0


class ScheduleService(Protocol):
    """What serve needs of the part that runs the schedules on its own thread."""

    state: str          # idle | starting | running | none | stopped | failed
    error: str | None
    api_url: str | None  # the Prefect API serving the schedules (its UI too, when enabled)

    def start(self) -> None: ...

    def stop(self, timeout: float = 40.0) -> None: ...


class ReconcileSchedule:
    """Runs `reconcile` (with `repair` when configured) for every enabled pipeline with a `reconcile:`
    schedule, at its cron times, one pipeline after another on one thread: a reconcile reads through the
    same connectors and rate limits as a run, and its repair takes the pipeline's lease like a run.

    A pipeline with no `reconcile:` whose source entity's state changes set no timestamp
    (`EntitySpec.state_changes_timestamped` false) gets DEFAULT_RECONCILE (daily, with repair), logged at
    start; `reconcile: {schedule: null}` opts out."""

    def __init__(self, loaded: LoadedConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.loaded = loaded
        self.clock = clock
        self._hub: Hub | None = None
        self.defaulted: list[str] = []
        self.entries: dict[str, ReconcileConfig] = {}
        for name, p in loaded.hub.pipelines.items():
            if not p.enabled:
                continue
            entry = p.reconcile
            if entry is None and not self._state_changes_timestamped(name):
                entry = DEFAULT_RECONCILE
                self.defaulted.append(name)
            if entry is not None and entry.schedule is not None:
                self.entries[name] = entry
        if self.defaulted:
            log.info("default reconcile scheduled: the source sets no timestamp on some state changes",
                     pipelines=self.defaulted, schedule=DEFAULT_RECONCILE.schedule, repair=DEFAULT_RECONCILE.repair)
        start = clock()
        self.next_at = {name: float(croniter(entry.schedule, start).get_next(float))
                        for name, entry in self.entries.items() if entry.schedule is not None}
        self.reports: dict[str, Report] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _state_changes_timestamped(self, name: str) -> bool:
        """Whether the pipeline's source entity stamps its state changes (a spec that cannot be had now,
        a connector that cannot start say, counts as stamped: the run reports that problem itself)."""
        if self._hub is None:
            self._hub = Hub(self.loaded)
        try:
            return self._hub.entity_spec(name, "source", Direction.READ).state_changes_timestamped
        except Exception as exc:
            log.warning("cannot tell whether the source stamps state changes; no default reconcile",
                        pipeline=name, error=f"{exc.__class__.__name__}: {exc}")
            return True

    def run_due(self, now: float | None = None) -> list[str]:
        """Reconcile every pipeline whose time has come; schedule its next time. The names reconciled."""
        now = self.clock() if now is None else now
        done: list[str] = []
        for name, entry in self.entries.items():
            if self.next_at[name] > now or self._stop.is_set():
                continue
            self.next_at[name] = float(croniter(entry.schedule or "", now).get_next(float))
            if self._hub is None:
                self._hub = Hub(self.loaded)
            try:
                self.reports[name] = reconcile(self._hub.pipeline(name), self._hub.store, repair=entry.repair)
            except Exception as exc:  # one failed reconcile must not stop the others or the thread
                log.error("scheduled reconcile failed", pipeline=name, error=f"{exc.__class__.__name__}: {exc}")
                continue
            done.append(name)
        return done

    def start(self) -> None:
        if self.entries:
            self._thread = threading.Thread(target=self._main, name="erphub-reconcile", daemon=True)
            self._thread.start()

    def _main(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            wait = min(self.next_at.values()) - self.clock()
            self._stop.wait(max(0.5, min(wait, 60.0)))

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._hub is not None:
            self._hub.close()


class HubServer:
    def __init__(self, loaded: LoadedConfig, *, host: str | None = None, port: int | None = None,
                 schedules: ScheduleService | None = None, inbox_settings: InboxSettings | None = None) -> None:
        self.loaded = loaded
        serve = loaded.hub.serve
        self.host = host or serve.host
        self.port = serve.port if port is None else port
        self.scheduler = schedules
        self.hub = Hub(loaded)
        self.worker = InboxWorker(self.hub.store, self.hub.pipeline, inbox_settings or serve.inbox,
                                  redact=self.hub.redactor())
        metrics = loaded.hub.metrics
        self.metrics_address = None if metrics.port is None else (metrics.host or self.host, metrics.port)
        self.reconciles = ReconcileSchedule(loaded)
        self._stop = threading.Event()
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    # -- the ASGI app ------------------------------------------------------------------------
    def build_app(self) -> Starlette:
        hub = self.hub.config.hub
        receiver = WebhookReceiver(hub.serve.webhooks, self.hub.store, router_from_config(hub.pipelines),
                                   on_accepted=self.worker.notify, verifiers=webhook_verifiers(self.loaded))
        metrics_routes = [] if self.metrics_address is not None else self.build_metrics_app().routes
        # Our /healthz first: it says more than the metrics app's plain "ok".
        return Starlette(routes=[Route("/healthz", self.healthz), *receiver.routes(), *metrics_routes])

    def build_metrics_app(self) -> Starlette:
        return make_metrics_app(self.hub.store)

    def scheduler_state(self) -> str:
        return "off" if self.scheduler is None else self.scheduler.state

    async def healthz(self, request: Request) -> JSONResponse:
        counts = await run_in_threadpool(inbox.status_counts, self.hub.store)
        healthy = self.worker.alive and self.scheduler_state() != "failed"
        body = {"status": "ok" if healthy else "degraded",
                "inbox_worker": "running" if self.worker.alive else "down",
                "schedules": self.scheduler_state(), "inbox": counts,
                "prefect_api": self.scheduler.api_url if self.scheduler is not None else None,
                "prefect_loaded": "prefect" in sys.modules}
        return JSONResponse(body, status_code=200 if healthy else 503)

    # -- lifecycle ---------------------------------------------------------------------------
    def check(self) -> None:
        """Build every webhook-fed pipeline now, so a config problem stops the start, not the first event."""
        webhook_verifiers(self.loaded)  # an unknown webhook kind: a ConfigError at its line
        for name, p in self.loaded.hub.pipelines.items():
            if p.enabled and (p.webhook is not None or p.reconcile is not None):
                self.hub.pipeline(name)

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or `request_stop`); the exit code."""
        self.check()
        hub = self.loaded.hub
        prime_series(pipelines=hub.pipelines, systems=hub.systems, webhook_sources=hub.serve.webhooks)
        previous = self._install_signals()
        try:
            self.worker.start()
            threads = [self._start_http(self.build_app(), self.host, self.port)]
            if self.metrics_address is not None:
                threads.append(self._start_http(self.build_metrics_app(), *self.metrics_address))
            if None in threads:
                return 1
            if self.scheduler is not None:
                self.scheduler.start()
            self.reconciles.start()
            log.info("erphub serve ready", host=self.host, port=self.port, schedules=self.scheduler_state(),
                     webhook_sources=sorted(hub.serve.webhooks),
                     metrics=":".join(map(str, self.metrics_address)) if self.metrics_address else "same listener")
            while not self._stop.wait(0.5):
                if not all(t is not None and t.is_alive() for t in threads):
                    log.error("http server stopped unexpectedly")
                    return 1
            log.info("erphub serve stopping")
            return 0
        finally:
            self._shutdown()
            self._restore_signals(previous)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        handlers: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            handlers[sig] = signal.signal(sig, self._on_signal)
        return handlers

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _start_http(self, app: Starlette, host: str, port: int) -> threading.Thread | None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None,
                                access_log=False, lifespan="off", timeout_graceful_shutdown=10)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"erphub-http-{port}", daemon=True)
        thread.start()
        self._servers.append((server, thread))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                log.error("http server did not start", host=host, port=port)
                return None
            time.sleep(0.05)
        return thread

    def _shutdown(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True  # in-flight requests finish: an accepted event is committed
        for _, thread in self._servers:
            thread.join(15)
        if self.scheduler is not None:
            self.scheduler.stop()
        self.reconciles.stop()
        self.worker.stop()
        try:
            self.hub.close()
        except ErphubError as exc:
            log.warning("closing the hub", error=str(exc))
        log.info("erphub serve stopped")
