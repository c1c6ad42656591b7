"""The `sync_pipeline` flow: one Prefect task per page of source records, never per record.

Retries live in one layer per failure kind: tenacity retries single HTTP calls inside connectors;
the page task retries only when the whole target stayed unreachable after those (TransientError),
which is safe because links make re-processing a page idempotent. Anything else fails the run,
with the cursor left at the last committed page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext, TaskRunContext
from prefect.states import State

from erphub.config.loader import load_config
from erphub.core.errors import TransientError
from erphub.core.outcomes import Outcome
from erphub.core.records import Page
from erphub.engine import PipelineRun, run_pipeline
from erphub.monitoring.logging import ensure_logging
from erphub.runtime import Hub

# Set by the CLI in the same process to draw its progress bar; a flow parameter could not carry it
# (Prefect records parameters as JSON).
progress_hook: Callable[[dict[str, int]], None] | None = None

log = structlog.get_logger("erphub.flows")


def flow_run_name(pipeline: str, run_id: str) -> str:
    return f"{pipeline}-{run_id}"


def run_tags(pipeline: str, run_id: str) -> list[str]:
    return [f"erphub-run:{run_id}", f"erphub-pipeline:{pipeline}"]


def name_flow_run(pipeline: str, run_id: str) -> None:
    """Give the Prefect flow run erphub's run id (name and tags): the Prefect UI, `erphub logs RUN_ID`
    and `erphub status` then meet. A Prefect API hiccup here never fails the run."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    flow_run = context.flow_run
    name, tags = flow_run_name(pipeline, run_id), sorted({*flow_run.tags, *run_tags(pipeline, run_id)})
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=name, tags=tags)
    except Exception as exc:
        log.warning("could not name the flow run", flow_run_id=str(flow_run.id), error=str(exc))
        return
    flow_run.name, flow_run.tags = name, tags
    # Prefect's own lines of this flow run carry flow_run_id (their flow_run_name was fixed when the
    # engine started): erphub's lines carry it too, so `erphub logs RUN_ID` finds both.
    structlog.contextvars.bind_contextvars(flow_run_id=str(flow_run.id))


def _only_outages(task: Any, task_run: Any, state: State[Any]) -> bool:
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


@task(name="sync-page", retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=_only_outages,
      cache_policy=NO_CACHE, log_prints=False)
def sync_page(run: PipelineRun, page: Page) -> dict[str, int]:
    """Map, deliver and commit one page of records."""
    context = TaskRunContext.get()
    if context is not None and context.task_run.run_count > 1:
        run.counts.subtract({Outcome.READ: len(page.records)})  # a retried page is counted once
    return run.process_page(page)


@flow(name="sync-pipeline", log_prints=False, validate_parameters=False)
def sync_pipeline(pipeline: str, config_path: str = "config/demo.yaml", trigger: str = "schedule",
                  since: datetime | None = None, until: datetime | None = None, full: bool = False,
                  page_retries: int | None = None) -> dict[str, Any]:
    """Run one pipeline from its cursor to the newest change; returns the run's summary."""
    loaded = load_config(config_path)
    ensure_logging(loaded.secret_values)  # a scheduled run is a fresh process: structured, redacted logs
    retries = loaded.pipeline(pipeline).flow_retries if page_retries is None else page_retries
    delay = loaded.pipeline(pipeline).flow_retry_delay_s
    page_task = sync_page.with_options(retries=retries, retry_delay_seconds=delay)
    with Hub(loaded) as hub:
        info = run_pipeline(hub.pipeline(pipeline), hub.store, trigger=trigger, since=since, until=until, full=full,
                            on_progress=progress_hook, page_step=page_task,
                            on_start=lambda run_id: name_flow_run(pipeline, run_id))
    return info.as_dict()
