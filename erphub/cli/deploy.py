"""`erphub deploy` and `erphub worker`: the pipelines of a config on a shared Prefect server (scale-out).

`erphub deploy --config FILE` registers one deployment per scheduled pipeline (`sync-pipeline/NAME`)
and one per reconcile schedule (`reconcile-pipeline/reconcile-NAME`, as `erphub serve` would run them)
on the Prefect server named by PREFECT_API_URL, in the process work pool `erphub` (created if missing).
Re-running it updates the same deployments. `erphub worker` is `prefect worker start --pool erphub`
with erphub's Prefect settings; start one on every machine that should run pipelines.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated, Any

import typer

from erphub.cli.options import DEFAULT_CONFIG, ConfigOption, JsonOption
from erphub.cli.output import fail, out, print_json, user_errors
from erphub.core.urls import without_credentials

PoolOption = Annotated[str, typer.Option("--pool", help="Prefect work pool (a process pool, created if missing).")]
CrashAfterOption = Annotated[int, typer.Option(
    "--crash-after", min=45, metavar="SECONDS",
    help="A flow run with no heartbeat for this long lost its worker: it is marked Crashed and run again "
         "(workers send one every 30 s).")]


def prefect_api_url() -> str:
    """PREFECT_API_URL, checked to answer /health; exit 2 with one line when it is unset or unreachable."""
    import httpx

    url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if not url:
        raise fail("error: PREFECT_API_URL is not set: point it at the shared Prefect server, "
                   "e.g. export PREFECT_API_URL=http://prefect.example.com:4200/api", 2)
    shown = without_credentials(url)  # a server behind basic auth carries its password in the URL
    try:
        response = httpx.get(f"{url}/health", timeout=5)
    except httpx.HTTPError as exc:
        raise fail(f"error: the Prefect server at PREFECT_API_URL={shown} is unreachable ({exc.__class__.__name__})",
                   2) from None
    if response.status_code != 200:
        raise fail(f"error: the Prefect server at PREFECT_API_URL={shown} answered /health with "
                   f"{response.status_code}", 2)
    return url


def reconcile_schedules(loaded: Any) -> dict[str, tuple[str, bool]]:
    """pipeline -> (cron, repair) of every reconcile `erphub serve` would schedule (defaults included)."""
    from erphub.serve import ReconcileSchedule

    schedule = ReconcileSchedule(loaded)
    try:
        return {name: (entry.schedule or "", entry.repair) for name, entry in schedule.entries.items()}
    finally:
        schedule.stop()


def migrate_store(loaded: Any) -> None:
    """Create or upgrade the shared store once here, so workers starting runs at once never race on it."""
    from erphub.store import Store

    Store(loaded.store_url()).close()


def deploy(config: ConfigOption = DEFAULT_CONFIG, pool: PoolOption = "erphub", crash_after: CrashAfterOption = 90,
           as_json: JsonOption = False) -> None:
    """Register the config's schedules as deployments on the Prefect server at PREFECT_API_URL.

    One deployment per scheduled pipeline and per reconcile schedule, in a process work pool, and the
    automation that crashes and reruns a flow run whose worker died; run again after a config change (it
    updates them). Exit 2 when PREFECT_API_URL is unset or unreachable."""
    from erphub.config.loader import load_config

    with user_errors():
        loaded = load_config(config)
        url = prefect_api_url()
        from erphub.flows.prefect_env import configure_prefect_env

        configure_prefect_env(loaded.state_dir)
        from erphub.flows.deployments import (
            CRASH_AUTOMATION,
            build_deployments,
            ensure_crash_automation,
            ensure_work_pool,
            reconcile_deployments,
            register,
        )

        deployments = build_deployments(loaded) + reconcile_deployments(loaded, reconcile_schedules(loaded))
        migrate_store(loaded)

        async def apply() -> tuple[bool, list[Any], bool]:
            return (await ensure_work_pool(pool), await register(deployments, pool),
                    await ensure_crash_automation(crash_after))

        created, registered, automation_created = asyncio.run(apply())
    rows = [{"flow": r.flow, "deployment": r.deployment, "id": r.id, "cron": r.cron} for r in registered]
    if as_json:
        print_json({"prefect_api_url": without_credentials(url), "work_pool": pool, "work_pool_created": created,
                    "deployments": rows,
                    "crash_automation": {"name": CRASH_AUTOMATION, "created": automation_created,
                                         "after_seconds": crash_after}})
        return
    out.print(f"work pool {pool!r} {'created' if created else 'exists'} on {without_credentials(url)}")
    out.print(f"automation {CRASH_AUTOMATION!r} {'created' if automation_created else 'updated'}: "
              f"a run silent for {crash_after} s is crashed and rerun", markup=False, highlight=False)
    for row in rows:
        out.print(f"  {row['flow']}/{row['deployment']}  {row['cron'] or '-'}", markup=False, highlight=False)
    out.print(f"{len(rows)} deployments; start workers with: erphub worker --pool {pool}")


def worker(pool: PoolOption = "erphub",
           name: Annotated[str | None, typer.Option(help="Worker name (default: Prefect's).")] = None,
           limit: Annotated[int | None, typer.Option(help="Most flow runs at once on this worker.", min=1)] = None,
           ) -> None:
    """Run the work pool's flow runs on this machine: `prefect worker start --pool erphub` (Ctrl-C stops)."""
    url = prefect_api_url()
    os.environ["PREFECT_API_URL"] = url
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Flow runs inherit it: their heartbeats drive the crash automation `erphub deploy` creates.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
    # The worker's and its flow runs' Prefect loggers through erphub's handlers: one JSON line per event,
    # not a Prefect console line beside each of erphub's.
    from erphub.monitoring.logging import PREFECT_LOGGING_CONFIG

    os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", PREFECT_LOGGING_CONFIG)
    args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    args += [] if name is None else ["--name", name]
    args += [] if limit is None else ["--limit", str(limit)]
    os.execv(sys.executable, args)
