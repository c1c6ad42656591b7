"""`erphub serve`: one process with the HTTP endpoints, the inbox worker and the schedules.

    main thread ── signal handlers (SIGTERM/SIGINT) ── waits, then stops the others in order
    ├── uvicorn thread ── /webhooks/{source}, /metrics, /healthz
    ├── inbox worker thread ── delivers accepted events through their pipelines
    └── schedules thread ── a Prefect server child process (unless PREFECT_API_URL names one) and
                            Prefect's runner serving a deployment per scheduled pipeline
                            (skipped with --no-schedules; then Prefect is never imported)

Why a Prefect server process and not Prefect's ephemeral one: the ephemeral server does not run
the scheduler service (Prefect 3.9.1 runs only services marked for ephemeral mode), so cron
schedules would never create runs. Measured here: the child answers /api/health in about 15 s.

Shutdown: stop taking requests (uvicorn finishes the ones in flight), stop the schedules (Prefect
pauses them), let the worker finish its pass, close connectors and the store. Exit code 0.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from config.loader import LoadedConfig
from erphub.errors import ErphubError
from erphub.runtime import Hub
from erphub.webhooks import inbox
from erphub.webhooks.receiver import WebhookReceiver, router_from_config
from erphub.webhooks.worker import InboxSettings, InboxWorker
from monitoring.exposition import make_metrics_app, prime_series

log = structlog.get_logger("erphub.serve")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 30.0


def _death_signal_hook() -> Any:
    """A pre-exec hook giving the child SIGTERM when the thread that started it ends, even when erphub
    serve is killed (Linux PR_SET_PDEATHSIG). libc is loaded here, in the parent, so the child only
    makes one system call between fork and exec."""
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    return lambda: prctl(1, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrefectServerProcess:
    """`prefect server start` on a free loopback port, as a child of erphub serve."""

    def __init__(self, log_path: Path, startup_timeout_s: float = 180.0) -> None:
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, should_stop: threading.Event) -> str | None:
        """The API URL once healthy; None if stop was asked meanwhile. Raises when it cannot start."""
        import httpx

        port = _free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
                 "--no-ui", "--analytics-off"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_death_signal_hook())
        url = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + self.startup_timeout_s
        while not should_stop.is_set():
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.process.returncode} (see {self.log_path})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {self.startup_timeout_s:.0f} s")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            should_stop.wait(0.25)
        return None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class Schedules:
    """The schedules part of erphub serve: Prefect server (child) + runner, on one background thread."""

    def __init__(self, loaded: LoadedConfig, state_dir: Path) -> None:
        self.loaded = loaded
        self.state_dir = state_dir
        self.state = "idle"  # idle | starting | running | none | stopped | failed
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: PrefectServerProcess | None = None
        self._runner: Any = None

    def start(self) -> None:
        self.state = "starting"
        self._thread = threading.Thread(target=self._main, name="erphub-schedules", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._serve()
            if self.state != "none":
                self.state = "stopped"
        except Exception as exc:
            self.state = "failed"
            self.error = f"{exc.__class__.__name__}: {exc}"
            log.error("schedules failed", error=self.error)

    def _serve(self) -> None:
        from flows.prefect_env import configure_prefect_env

        configure_prefect_env(self.state_dir)
        # Flow runs execute in subprocesses that import flows/ and erphub/ from the project.
        paths = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        if not os.environ.get("PREFECT_API_URL"):
            self._server = PrefectServerProcess(self.state_dir / "prefect-server.log")
            started = time.monotonic()
            url = self._server.start(self._stop)
            if url is None:
                return
            os.environ["PREFECT_API_URL"] = url  # before prefect is imported: its settings read the env
            log.info("prefect server started", seconds=round(time.monotonic() - started, 1))
        from flows.deployments import ScheduleRunner, build_deployments

        deployments = build_deployments(self.loaded)
        if not deployments:
            self.state = "none"
            log.info("no scheduled pipelines")
            return
        self._runner = ScheduleRunner(deployments)
        if self._stop.is_set():
            return
        self.state = "running"
        self._runner.run()

    def stop(self, timeout: float = 40.0) -> None:
        self._stop.set()
        if self._runner is not None:
            self._runner.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._server is not None:
            self._server.stop()


class HubServer:
    def __init__(self, loaded: LoadedConfig, *, host: str | None = None, port: int | None = None,
                 schedules: bool = True, inbox_settings: InboxSettings | None = None,
                 state_dir: Path | None = None) -> None:
        self.loaded = loaded
        serve = loaded.hub.serve
        self.host = host or serve.host
        self.port = serve.port if port is None else port
        self.schedules = schedules
        self.state_dir = state_dir or Path.cwd() / ".erphub"
        self.hub = Hub(loaded)
        self.worker = InboxWorker(self.hub.store, self.hub.pipeline, inbox_settings or serve.inbox,
                                  redact=self.hub.redactor())
        self.scheduler: Schedules | None = None
        self._stop = threading.Event()
        self._server: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None

    # -- the ASGI app ------------------------------------------------------------------------
    def build_app(self) -> Starlette:
        hub = self.hub.config.hub
        receiver = WebhookReceiver(hub.serve.webhooks, self.hub.store, router_from_config(hub.pipelines),
                                   on_accepted=self.worker.notify)
        metrics_app = make_metrics_app(self.hub.store)
        # Our /healthz first: it says more than the metrics app's plain "ok".
        return Starlette(routes=[Route("/healthz", self.healthz), *receiver.routes(), *metrics_app.routes])

    def scheduler_state(self) -> str:
        if not self.schedules:
            return "off"
        return "none" if self.scheduler is None else self.scheduler.state

    async def healthz(self, request: Request) -> JSONResponse:
        counts = await run_in_threadpool(inbox.status_counts, self.hub.store)
        healthy = self.worker.alive and self.scheduler_state() != "failed"
        body = {"status": "ok" if healthy else "degraded",
                "inbox_worker": "running" if self.worker.alive else "down",
                "schedules": self.scheduler_state(), "inbox": counts,
                "prefect_loaded": "prefect" in sys.modules}
        return JSONResponse(body, status_code=200 if healthy else 503)

    # -- lifecycle ---------------------------------------------------------------------------
    def check(self) -> None:
        """Build every webhook-fed pipeline now, so a config problem stops the start, not the first event."""
        for name, p in self.loaded.hub.pipelines.items():
            if p.enabled and p.webhook is not None:
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
            server_thread = self._start_http()
            if server_thread is None:
                return 1
            if self.schedules:
                self._start_schedules()
            log.info("erphub serve ready", host=self.host, port=self.port, schedules=self.scheduler_state(),
                     webhook_sources=sorted(hub.serve.webhooks))
            while not self._stop.wait(0.5):
                if not server_thread.is_alive():
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

    def _start_http(self) -> threading.Thread | None:
        config = uvicorn.Config(self.build_app(), host=self.host, port=self.port, log_config=None,
                                access_log=False, lifespan="off", timeout_graceful_shutdown=10)
        self._server = uvicorn.Server(config)
        thread = threading.Thread(target=self._server.run, name="erphub-http", daemon=True)
        thread.start()
        self._http_thread = thread
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                log.error("http server did not start", host=self.host, port=self.port)
                return None
            time.sleep(0.05)
        return thread

    def _start_schedules(self) -> None:
        self.scheduler = Schedules(self.loaded, self.state_dir)
        self.scheduler.start()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.should_exit = True  # in-flight requests finish: an accepted event is committed
        if self._http_thread is not None:
            self._http_thread.join(15)
        if self.scheduler is not None:
            self.scheduler.stop()
        self.worker.stop()
        try:
            self.hub.close()
        except ErphubError as exc:
            log.warning("closing the hub", error=str(exc))
        log.info("erphub serve stopped")
