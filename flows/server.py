"""The Prefect side of `erphub serve`: a Prefect server child process and the runner serving schedules.

Why a Prefect server process and not Prefect's ephemeral one: the ephemeral server does not run
the scheduler service (Prefect 3.9.1 runs only services marked for ephemeral mode), so cron
schedules would never create runs. Measured here: the child answers /api/health in about 15 s.

`Schedules` is what `erphub.serve.HubServer` runs on a background thread (it only sees the
`ScheduleService` shape: start, stop, state, error); the CLI builds it, so the engine layer never
imports Prefect. Flow runs load `erphub.flows.sync` by module path from the installed package.

Once its Prefect API is known (its own child's, or PREFECT_API_URL's), serve names it in the state folder
(`prefect_env.SERVER_FILE`) until it stops: a one-shot `erphub run --engine prefect` of the same hub then
runs its flow there instead of starting an embedded server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from erphub.config.loader import LoadedConfig
from erphub.core.errors import ServiceError
from erphub.core.files import private_dir, private_file
from erphub.flows.prefect_env import death_signal_hook, forget_server, record_server

log = structlog.get_logger("erphub.serve")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrefectServerProcess:
    """`prefect server start` on a free loopback port, as a child of erphub serve."""

    def __init__(self, log_path: Path, startup_timeout_s: float = 180.0, *, ui: bool = False) -> None:
        self.log_path = log_path
        self.ui = ui
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, should_stop: threading.Event) -> str | None:
        """The API URL once healthy; None if stop was asked meanwhile. Raises when it cannot start."""
        import httpx

        port = _free_port()
        private_dir(self.log_path.parent)
        with self.log_path.open("ab") as out:
            private_file(self.log_path)  # the Prefect server logs flow parameters
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
                 *([] if self.ui else ["--no-ui"]), "--analytics-off"],
                env={**os.environ, "PREFECT_UI_ENABLED": "true" if self.ui else "false"},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=death_signal_hook())
        url = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + self.startup_timeout_s
        while not should_stop.is_set():
            if self.process.poll() is not None:
                raise ServiceError(f"prefect server exited with {self.process.returncode} (see {self.log_path})")
            if time.monotonic() > deadline:
                raise ServiceError(f"prefect server not healthy after {self.startup_timeout_s:.0f} s")
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
        self.api_url: str | None = os.environ.get("PREFECT_API_URL") or None  # the Prefect API the runner uses
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: PrefectServerProcess | None = None
        self._runner: Any = None
        self._recorded: str | None = None  # the API URL written to the state folder (SERVER_FILE)

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
        from erphub.flows.prefect_env import configure_prefect_env

        configure_prefect_env(self.state_dir)
        if not os.environ.get("PREFECT_API_URL"):
            self._server = PrefectServerProcess(self.state_dir / "logs" / "prefect-server.log",
                                                ui=self.loaded.hub.serve.prefect_ui)
            started = time.monotonic()
            url = self._server.start(self._stop)
            if url is None:
                return
            os.environ["PREFECT_API_URL"] = url  # before prefect is imported: its settings read the env
            self.api_url = url
            log.info("prefect server started", seconds=round(time.monotonic() - started, 1))
        if self.api_url:  # one-shot `erphub run --engine prefect` of this hub runs its flows there
            record_server(self.state_dir, self.api_url)
            self._recorded = self.api_url
        from erphub.flows.deployments import ScheduleRunner, build_deployments

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
        if self._recorded is not None:  # before the server goes: no run should start on it from now on
            forget_server(self.state_dir, self._recorded)
            self._recorded = None
        if self._server is not None:
            self._server.stop()
