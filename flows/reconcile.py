"""The `reconcile_pipeline` flow: a pipeline's scheduled reconcile (`reconcile: {schedule, repair}`) as a
Prefect flow, so `erphub deploy` can give it a deployment that any worker runs."""

from __future__ import annotations

from typing import Any

from prefect import flow

from erphub.config.loader import load_config
from erphub.monitoring.logging import ensure_logging
from erphub.reconcile import reconcile
from erphub.runtime import Hub


@flow(name="reconcile-pipeline", log_prints=False, validate_parameters=False)
def reconcile_pipeline(pipeline: str, config_path: str, repair: bool = False) -> dict[str, Any]:
    """Compare source and target of one pipeline (and repair the drift with `repair`); the report."""
    loaded = load_config(config_path)
    ensure_logging(loaded.secret_values)
    with Hub(loaded) as hub:
        report = reconcile(hub.pipeline(pipeline), hub.store, repair=repair)
    return report.as_dict()
