"""`erphub serve` as a plain function for the CLI, plus `python -m erphub.cli_serve` to run it alone.

The lead wires it into `erphub.cli` as:

    @app.command()
    def serve(config: ConfigOption = DEFAULT_CONFIG,
              host: Annotated[str | None, typer.Option(help="Bind address (default: serve.host).")] = None,
              port: Annotated[int | None, typer.Option(help="Port (default: serve.port, 9464).")] = None,
              no_schedules: Annotated[bool, typer.Option("--no-schedules", help="No Prefect.")] = False,
              log_format: Annotated[str, typer.Option(help="auto, json or console.")] = "auto") -> None:
        \"\"\"Webhooks, /metrics and the schedules of every pipeline, in one process.\"\"\"
        from erphub.cli_serve import serve_command
        serve_command(config, host, port, no_schedules, log_format)
"""

from __future__ import annotations

from typing import Annotated

import typer


def serve_command(config: str, host: str | None, port: int | None, no_schedules: bool,
                  log_format: str) -> None:
    """Run until SIGTERM/SIGINT. Exit 0 after a clean stop, 1 when serving failed, 2 on a config error."""
    from config.loader import load_config
    from erphub.cli import user_errors
    from erphub.runner import state_dir
    from erphub.serve import HubServer
    from monitoring.logging import LogFormat, configure_logging

    with user_errors():
        loaded = load_config(config)
        fmt: LogFormat = "json" if log_format == "json" else "console" if log_format == "console" else "auto"
        configure_logging(fmt=fmt, level="INFO", secrets=loaded.secret_values)
        server = HubServer(loaded, host=host, port=port, schedules=not no_schedules,
                           state_dir=state_dir(loaded))
        code = server.run()
    if code:
        raise typer.Exit(code)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def serve(
    config: Annotated[str, typer.Option("--config", "-c", envvar="ERPHUB_CONFIG", help="Config file.")]
    = "config/demo.yaml",
    host: Annotated[str | None, typer.Option(help="Bind address (default: serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port).")] = None,
    no_schedules: Annotated[bool, typer.Option("--no-schedules", help="HTTP and webhooks only.")] = False,
    log_format: Annotated[str, typer.Option(help="auto, json or console.")] = "auto",
) -> None:
    """Webhooks, /metrics and the schedules of every pipeline, in one process."""
    serve_command(config, host, port, no_schedules, log_format)


if __name__ == "__main__":
    app()
