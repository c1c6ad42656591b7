"""`erphub serve`: the webhook receiver, /metrics and the schedules of every pipeline, in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from erphub.cli.options import (
    DEFAULT_CONFIG,
    ConfigOption,
    LogFormatOption,
    LogLevelOption,
    count_metrics_in_state_dir,
    setup_logging,
)
from erphub.cli.output import user_errors


def serve(
    config: ConfigOption = DEFAULT_CONFIG,
    host: Annotated[str | None, typer.Option(help="Bind address (default: serve.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port, 9464).", min=0, max=65535)] = None,
    no_schedules: Annotated[bool, typer.Option("--no-schedules", help="Webhooks and /metrics only.")] = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = None,
) -> None:
    """Schedules (Prefect deployments), the webhook receiver and /metrics, in one process.

    Runs until SIGTERM/SIGINT. Exit 0 after a clean stop, 1 when serving failed, 2 on a config error.
    """
    from erphub.config.loader import load_config
    from erphub.flows.server import Schedules
    from erphub.monitoring import multiprocess
    from erphub.serve import HubServer

    with user_errors():
        loaded = load_config(config)
        setup_logging(log_format, loaded=loaded, log_level=log_level)
        # A new counting epoch for every process of this hub (this one, its flow runs, one-shot runs).
        multiprocess.reset(count_metrics_in_state_dir(loaded))
        schedules = None if no_schedules else Schedules(loaded, loaded.state_dir)
        code = HubServer(loaded, host=host, port=port, schedules=schedules).run()
    if code:
        raise typer.Exit(code)
