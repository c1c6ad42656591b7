"""Prefect deployments built from config, and a runner serving them from a background thread.

One deployment per enabled pipeline with a `schedule` (its cron), each with a concurrency limit of
1 and the CANCEL_NEW strategy: while a run of a pipeline is still going, the next tick is cancelled
instead of queued, so at most one run of a pipeline exists and a slow run never builds a backlog.

Import this module only after `flows.prefect_env.configure_prefect_env` (it imports prefect).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import structlog
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.runner import Runner

from config.loader import LoadedConfig
from flows.sync import sync_pipeline

log = structlog.get_logger("erphub.schedules")


ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def scheduled_pipelines(loaded: LoadedConfig) -> dict[str, str]:
    """Enabled pipelines that have a cron schedule: name -> cron."""
    return {name: p.schedule for name, p in loaded.hub.pipelines.items() if p.enabled and p.schedule}


def build_deployments(loaded: LoadedConfig) -> list[RunnerDeployment]:
    deployments: list[RunnerDeployment] = []
    for name, cron in scheduled_pipelines(loaded).items():
        cfg = loaded.hub.pipelines[name]
        deployment = sync_pipeline.to_deployment(
            name=name,
            cron=cron,
            concurrency_limit=ONE_AT_A_TIME,
            parameters={"pipeline": name, "config_path": str(loaded.path), "trigger": "schedule"},
            description=cfg.description or f"erphub pipeline {name}",
            tags=["erphub"],
        )
        assert isinstance(deployment, RunnerDeployment)  # called from sync code: not a coroutine
        deployments.append(deployment)
    return deployments


class ScheduleRunner:
    """Prefect's `Runner` on its own event loop in a daemon thread, so `erphub serve` keeps the main
    thread (and its signal handlers) for itself. `stop()` asks the runner to stop polling; Prefect
    then pauses the deployments' schedules, as `prefect.serve` does on SIGTERM."""

    def __init__(self, deployments: list[RunnerDeployment], *, name: str = "erphub-serve") -> None:
        self.deployments = deployments
        self.name = name
        self.state = "idle"  # idle | starting | running | stopped | failed
        self.error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Any = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._stop_requested = threading.Event()

    def start(self) -> None:
        self.state = "starting"
        self._thread = threading.Thread(target=self._main, name="erphub-prefect-runner", daemon=True)
        self._thread.start()

    def wait_running(self, timeout: float) -> bool:
        return self._running.wait(timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
            self.state = "stopped"
        except Exception as exc:
            self.state = "failed"
            self.error = f"{exc.__class__.__name__}: {exc}"
            log.error("schedule runner failed", error=self.error)

    async def _serve(self) -> None:
        runner = Runner(name=self.name, pause_on_shutdown=True, limit=None)
        for deployment in self.deployments:
            await runner.aadd_deployment(deployment)
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        if self._stop_requested.is_set():
            return
        self._loop.call_later(0.5, self._mark_running)
        log.info("schedules served", deployments=[d.name for d in self.deployments])
        await runner.start()

    def _mark_running(self) -> None:
        if self._runner is not None and self._runner.started:
            self.state = "running"
            self._running.set()
        elif self._loop is not None and not self._stop_requested.is_set():
            self._loop.call_later(0.5, self._mark_running)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop_requested.set()
        loop, runner = self._loop, self._runner
        if loop is not None and runner is not None and runner.started and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(runner.astop(), loop)
            try:
                future.result(timeout)
            except Exception as exc:  # already stopping, or the loop ended meanwhile
                log.warning("schedule runner stop", error=f"{exc.__class__.__name__}: {exc}")
        if self._thread is not None:
            self._thread.join(timeout)
