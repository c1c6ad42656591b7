"""The options every command shares, and opening the hub a config describes.

Command modules import the engine inside their commands, not at the top: `erphub --help` and
`erphub mapping check` then start without loading the store, the engine and every connector.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from erphub.core.errors import ConfigError
from erphub.monitoring.logging import LogFormat, configure_logging

if TYPE_CHECKING:
    from erphub.runtime import Hub

DEFAULT_CONFIG = "config/demo.yaml"
ConfigOption = Annotated[str, typer.Option("--config", "-c", help="Config file.", envvar="ERPHUB_CONFIG")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LogFormatOption = Annotated[str, typer.Option(help="auto, json or console.")]


def open_hub(config: str, **kwargs: Any) -> Hub:
    from erphub.config.loader import load_config
    from erphub.runtime import Hub

    return Hub(load_config(config), **kwargs)


def as_log_format(value: str) -> LogFormat:
    if value in ("auto", "json", "console"):
        return value  # type: ignore[return-value]
    raise ConfigError(f"--log-format must be auto, json or console, not {value!r}")


def setup_logging(log_format: str = "auto", secrets: list[str] | None = None) -> None:
    configure_logging(fmt=as_log_format(log_format), level="INFO", secrets=secrets or [])


def state_dir() -> Path:
    """Where Prefect keeps its home and the Prefect server its log: `.erphub/` of the current folder."""
    return Path.cwd() / ".erphub"
