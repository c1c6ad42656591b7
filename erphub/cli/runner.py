"""Run pipelines for the CLI (`erphub run`, `erphub demo`): through the embedded Prefect flow or plainly,
with a progress line in a terminal, and hand one-shot runs' metrics to the Pushgateway."""

from __future__ import annotations

import atexit
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import structlog
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from erphub.cli.options import count_metrics_in_state_dir, setup_logging
from erphub.config.loader import LoadedConfig, load_config
from erphub.core.errors import ConfigError, RunFailed
from erphub.engine import run_pipeline
from erphub.flows.prefect_env import EmbeddedServer, attach_to_serve, configure_prefect_env
from erphub.runtime import Hub
from erphub.store import Store

log = structlog.get_logger("erphub.cli")


def select_pipelines(loaded: LoadedConfig, names: list[str], run_all: bool) -> list[str]:
    if run_all and names:
        raise ConfigError("give pipeline names or --all, not both", file=loaded.path)
    if run_all:
        return [name for name, p in loaded.hub.pipelines.items() if p.enabled]
    if not names:
        raise ConfigError("name a pipeline to run, or --all", file=loaded.path)
    for name in names:
        loaded.pipeline(name)
    return names


@contextmanager
def progress_reporter(enabled: bool, pipeline: str) -> Iterator[Callable[[dict[str, int]], None] | None]:
    """A live progress line in a terminal; elsewhere the engine's own log lines are the progress."""
    if not enabled:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.fields[counts]}"),
                  TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(pipeline, total=None, counts="starting")

        def update(counts: dict[str, int]) -> None:
            shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            progress.update(task, counts=shown)

        yield update


def push_metrics(loaded: LoadedConfig) -> None:
    """A one-shot run leaves before Prometheus could scrape it: hand the hub's cumulative metrics
    (every process's counters in the metrics folder, the store's gauges) to the Pushgateway."""
    settings = loaded.hub.metrics
    if not settings.pushgateway_url:
        return
    from erphub.monitoring.pushgateway import PushgatewaySettings, push_run_metrics

    target = PushgatewaySettings(url=settings.pushgateway_url)
    if settings.instance:
        target.instance = settings.instance
    with Hub(loaded) as hub:
        push_run_metrics(target, state_reader=hub.store)


def run_pipelines(config: str, names: list[str], *, run_all: bool, since: datetime | None, until: datetime | None,
                  full: bool, engine: str, log_format: str, progress: bool,
                  log_level: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    loaded = load_config(config)
    setup_logging(log_format, loaded=loaded, log_level=log_level)
    count_metrics_in_state_dir(loaded)
    selected = select_pipelines(loaded, names, run_all)
    results: list[dict[str, Any]] = []
    failed = False
    if engine == "prefect":
        configure_prefect_env(loaded.state_dir)
        # PREFECT_API_URL set, or else this hub's `erphub serve` running: its Prefect server runs the flow.
        attached = attach_to_serve(loaded.state_dir)
        if attached is not None:
            log.info("flow runs on erphub serve's Prefect server", prefect_api=attached)
        embedded = EmbeddedServer.start()  # starts while the flow is imported and the config probed
        from erphub.flows import sync as sync_flow  # only now: Prefect reads its settings on import

        with Hub(loaded) as hub:  # mapping and connector errors exit 2 before any flow starts
            for name in selected:
                hub.pipeline(name)
            if embedded is not None:
                sync_flow.preload()
                embedded.wait()
            settle_heap()
            for name in selected:
                with progress_reporter(progress, name) as on_progress:
                    sync_flow.progress_hook, sync_flow.given_hub = on_progress, hub
                    try:
                        state = sync_flow.sync_pipeline(pipeline=name, config_path=str(loaded.path),
                                                        trigger="manual", since=since, until=until, full=full,
                                                        return_state=True)
                    finally:
                        sync_flow.progress_hook = sync_flow.given_hub = None
                if state.is_completed():
                    results.append(state.result())
                else:
                    failed = True
                    error = state.result(raise_on_failure=False)  # a RunFailed names the run
                    results.append(failed_result(hub.store, error) if isinstance(error, RunFailed)
                                   else _failed_flow(name, state))
        push_metrics(loaded)
        return results, failed
    with Hub(loaded) as hub:
        settle_heap()
        for name in selected:
            with progress_reporter(progress, name) as on_progress:
                try:
                    results.append(run_pipeline(hub.pipeline(name), hub.store, since=since, until=until, full=full,
                                                on_progress=on_progress).as_dict())
                except RunFailed as exc:
                    failed = True
                    results.append(failed_result(hub.store, exc))
    push_metrics(loaded)
    return results, failed


def failed_result(store: Store, exc: RunFailed) -> dict[str, Any]:
    """The failed run as the store recorded it; a run that never started (the pipeline was busy) has no row."""
    info = store.get_run(exc.run_id)
    if info is not None:
        return info.as_dict()
    return {"pipeline": exc.pipeline, "run_id": None, "status": "failed", "counts": {}, "error": str(exc)}


def _failed_flow(name: str, state: Any) -> dict[str, Any]:
    """A flow run that failed without a RunFailed (which would name the run): the flow's message."""
    return {"pipeline": name, "run_id": None, "status": "failed", "counts": {}, "error": str(state.message)}


def settle_heap() -> None:
    """Keep what start-up built (the modules: about 200,000 objects with Prefect's) out of the cyclic
    garbage collector's passes for the rest of this one-shot process (`gc.freeze`), and at exit
    everything (a handler registered now runs after those registered later, Prefect's included).

    Measured over 20,000 records (gc callbacks, py-spy): the collector's full passes took 1.5 s of an
    `--engine prefect` run (0.9 s of `--engine plain`), and Python's own collections while it tore
    the process down another 0.9 s after the last atexit handler (0.2 s with them frozen). What is
    frozen is still freed by reference counting; only garbage cycles made before the freeze stay
    until the process ends. Both engines do it: `--engine prefect / plain` compares like with like."""
    gc.freeze()
    atexit.unregister(gc.freeze)  # once, however many runs this process makes (`erphub demo`)
    atexit.register(gc.freeze)

