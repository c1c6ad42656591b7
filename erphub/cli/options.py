"""The options every command shares, and opening the hub a config describes.

Command modules import the engine inside their commands, not at the top: `erphub --help` and
`erphub mapping check` then start without loading the store, the engine and every connector.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from erphub.core.errors import ConfigError
from erphub.core.files import private_dir
from erphub.monitoring import multiprocess
from erphub.monitoring.logging import LEVELS, LogFormat, configure_logging

if TYPE_CHECKING:
    from erphub.config.loader import LoadedConfig
    from erphub.runtime import Hub

DEFAULT_CONFIG = "config/demo.yaml"
ConfigOption = Annotated[str, typer.Option("--config", "-c", help="Config file.", envvar="ERPHUB_CONFIG")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LogFormatOption = Annotated[str, typer.Option(help="auto, json or console.")]
LogLevelOption = Annotated[str | None, typer.Option(
    "--log-level", envvar="ERPHUB_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR (default: logging.level, INFO).")]
WideOption = Annotated[bool, typer.Option("--wide", help="Every column (the table is then wider than 80).")]
MAX_ID = 2**63 - 1  # the store's ids are 64-bit: a larger number is a typo, answered as one


def operator_name() -> str:
    """Who is at the keyboard, for the audit of decisions about dead letters."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return f"uid {os.getuid()}"


def open_hub(config: str, *, strict: bool = False, **kwargs: Any) -> Hub:
    from erphub.config.loader import load_config
    from erphub.runtime import Hub

    return Hub(load_config(config, strict=strict), **kwargs)


def as_log_format(value: str) -> LogFormat:
    if value in ("auto", "json", "console"):
        return value  # type: ignore[return-value]
    raise ConfigError(f"--log-format must be auto, json or console, not {value!r}")


def as_log_level(value: str | None, loaded: LoadedConfig | None = None) -> str:
    """--log-level / ERPHUB_LOG_LEVEL, else the config's `logging.level`, else INFO."""
    if value is None:
        value = os.environ.get("ERPHUB_LOG_LEVEL") or None
    if value is None:
        return (loaded.hub.logging.level if loaded is not None else None) or "INFO"
    if value.upper() not in LEVELS:
        raise ConfigError(f"--log-level must be one of {', '.join(LEVELS)}, not {value!r}")
    return value.upper()


def log_file(loaded: LoadedConfig) -> Path | None:
    """`logging.file`, relative to the config file's folder."""
    name = loaded.hub.logging.file
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else (loaded.path.parent / path).resolve()


def setup_logging(log_format: str = "auto", secrets: list[str] | None = None, *,
                  loaded: LoadedConfig | None = None, log_level: str | None = None) -> None:
    settings = loaded.hub.logging if loaded is not None else None
    file = log_file(loaded) if loaded is not None else None
    configure_logging(fmt=as_log_format(log_format), level=as_log_level(log_level, loaded),
                      secrets=secrets if secrets is not None else (loaded.secret_values if loaded else []),
                      file=str(file) if file else None,
                      max_bytes=settings.max_bytes if settings else 10 * 1024 * 1024,
                      backups=settings.backups if settings else 5)


def count_metrics_in_state_dir(loaded: LoadedConfig) -> Path:
    """Counters and histograms of this process (and the children it starts) go to the shared metrics
    folder in the config's state folder, so whichever process of this hub counts, `erphub serve`'s
    /metrics and Pushgateway pushes see it."""
    return multiprocess.enable(private_dir(loaded.state_dir / "metrics"))
