"""Prefect deployments built from config: served by `erphub serve`'s own runner (a background thread),
or registered on a shared Prefect server in a process work pool by `erphub deploy` (scale-out).

One deployment per enabled pipeline with a `schedule` (its cron), each with a concurrency limit of
1 and the CANCEL_NEW strategy: while a run of a pipeline is still going, the next tick is cancelled
instead of queued, so at most one run of a pipeline exists and a slow run never builds a backlog.

Import this module only after `flows.prefect_env.configure_prefect_env` (it imports prefect).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import timedelta

import structlog
from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy, StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.events.actions import ChangeFlowRunState, RunDeployment
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectAlreadyExists
from prefect.runner import Runner
from prefect.types.entrypoint import EntrypointType

from erphub.config.loader import LoadedConfig
from erphub.flows.reconcile import reconcile_pipeline
from erphub.flows.sync import sync_pipeline

log = structlog.get_logger("erphub.schedules")


# A flow run sends a heartbeat event every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (Prefect's minimum is
# 30; `erphub worker` sets 30). Without this automation, a run whose worker machine died stays Running
# forever: Prefect notices no SIGKILLed worker by itself ("How to detect and respond to zombie flows",
# https://docs.prefect.io/v3/advanced/detect-zombie-flows).
HEARTBEAT_SECONDS = 30
CRASH_AUTOMATION = "erphub: crash and rerun flow runs whose heartbeats stopped"
ERPHUB_FLOWS = ["sync-pipeline", "reconcile-pipeline"]

ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
WORK_POOL = "erphub"


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
            # Flow runs import the flow from the installed package, whatever their working folder.
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        assert isinstance(deployment, RunnerDeployment)  # called from sync code: not a coroutine
        deployments.append(deployment)
    return deployments


def reconcile_deployments(loaded: LoadedConfig, schedules: dict[str, tuple[str, bool]]) -> list[RunnerDeployment]:
    """One deployment per reconcile schedule: pipeline -> (cron, repair), as `serve.ReconcileSchedule`
    works them out (an explicit `reconcile:`, or DEFAULT_RECONCILE). Named `reconcile-PIPELINE`."""
    deployments: list[RunnerDeployment] = []
    for name, (cron, repair) in schedules.items():
        deployment = reconcile_pipeline.to_deployment(
            name=f"reconcile-{name}",
            cron=cron,
            concurrency_limit=ONE_AT_A_TIME,
            parameters={"pipeline": name, "config_path": str(loaded.path), "repair": repair},
            description=f"erphub reconcile of {name}" + (" with repair" if repair else ""),
            tags=["erphub"],
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        assert isinstance(deployment, RunnerDeployment)
        deployments.append(deployment)
    return deployments


@dataclass(frozen=True)
class Registered:
    flow: str
    deployment: str
    id: str
    cron: str | None


async def ensure_work_pool(name: str = WORK_POOL) -> bool:
    """A process work pool of this name on the Prefect server; True when this call created it."""
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            return False
    return True


async def register(deployments: list[RunnerDeployment], pool: str = WORK_POOL) -> list[Registered]:
    """Create or update each deployment on the server (by flow and name: a re-run updates, never doubles)."""
    done: list[Registered] = []
    for deployment in deployments:
        deployment_id = await deployment.aapply(work_pool_name=pool)
        crons = [getattr(s.schedule, "cron", None) for s in deployment.schedules or []]
        done.append(Registered(deployment.flow_name or "", deployment.name, str(deployment_id),
                               crons[0] if crons else None))
    return done


async def ensure_crash_automation(after_s: int) -> bool:
    """The automation that marks an erphub flow run Crashed when no sign of life (heartbeat, Pending,
    Running) and no final state came for `after_s` seconds, and runs its deployment again; True when this
    call created it.

    The rerun is safe: the store lease of the dead run is taken over (at once on the same host, after its
    TTL on another) and links make it write nothing twice. Matched by name, so a re-deploy updates it."""
    # Pending and Running arm it too: they are the server's own events, while a run killed in its first
    # seconds may never have delivered a heartbeat (the engine starts them after Running, and sends them
    # through a buffered event client).
    alive = {"prefect.flow-run.heartbeat", "prefect.flow-run.Pending", "prefect.flow-run.Running"}
    final = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}
    automation = Automation(
        name=CRASH_AUTOMATION,
        description="A flow run of erphub that stopped sending heartbeats lost its worker: crash it, rerun it.",
        trigger=EventTrigger(
            after=alive,
            expect=alive | final,
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.role": "flow",
                                                 "prefect.resource.name": ERPHUB_FLOWS}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_s),
        ),
        actions=[ChangeFlowRunState(name="Crashed", state=StateType.CRASHED, force=False,
                                    message=f"no heartbeat for {after_s} s: its worker is gone (erphub)"),
                 # the deployment of the silent run, with its own default parameters
                 RunDeployment(source="inferred", deployment_id=None, parameters=None, job_variables=None)],
    )
    try:
        existing = await Automation.aread(name=CRASH_AUTOMATION)
    except ValueError:  # Prefect's answer for "no automation of that name"
        await automation.acreate()
        return True
    automation.id = existing.id
    await automation.aupdate()
    return False


class ScheduleRunner:
    """Prefect's `Runner` serving the deployments on an event loop owned by the calling thread.

    `erphub serve` calls `run()` from a background thread so the main thread keeps the signal
    handlers; `stop()` (from any thread) asks the runner to stop polling, and Prefect then pauses the
    deployments' schedules, as `prefect.serve` does on SIGTERM.
    """

    def __init__(self, deployments: list[RunnerDeployment], *, name: str = "erphub-serve") -> None:
        self.deployments = deployments
        self.name = name
        self.running = threading.Event()
        self._stop_requested = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_async: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        runner = Runner(name=self.name, pause_on_shutdown=True, limit=None)
        for deployment in self.deployments:
            await runner.aadd_deployment(deployment)
        self._stop_async = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stop_requested.is_set():
            return
        started = asyncio.create_task(runner.start())
        stop = asyncio.create_task(self._stop_async.wait())
        log.info("schedules served", deployments=[d.name for d in self.deployments])
        self.running.set()
        done, _ = await asyncio.wait({started, stop}, return_when=asyncio.FIRST_COMPLETED)
        if started in done:  # the runner ended on its own: say why
            stop.cancel()
            started.result()
            return
        for _ in range(100):  # stop asked right after the start: let the runner finish starting first
            if runner.started:
                break
            await asyncio.sleep(0.1)
        if runner.started:
            await runner.astop()
        try:
            await asyncio.wait_for(started, 30)
        except (asyncio.CancelledError, TimeoutError):
            log.warning("schedule runner did not stop in time")

    def stop(self) -> None:
        self._stop_requested.set()
        loop, event = self._loop, self._stop_async
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
