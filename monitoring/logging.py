"""Structured logging for erphub: structlog and the stdlib (httpx, prefect, uvicorn) through one redactor.

Everything ends in one stdlib handler whose `ProcessorFormatter` runs the redaction processor and then
renders either JSON lines (production, pipes, files) or readable console lines (a terminal). A
structlog event and an ``httpx`` INFO line therefore get the same timestamp, level, run context and
secret filtering.

Run context (``pipeline``, ``run_id``, ``system``) lives in structlog contextvars: `run_context` binds
it for the duration of a run and `system_context` switches the system for a stretch of work, so every
event in between carries all three keys.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from structlog.contextvars import bound_contextvars
from structlog.types import Processor

from erphub.monitoring.redaction import RedactProcessor, add_secrets, redact_secrets_only, redact_text

LogFormat = Literal["auto", "json", "console"]

# Libraries whose own handlers would bypass our formatter; their records go to the root handler.
ROUTED_LOGGERS = ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "alembic")
# Prefect ships log records to its API through its own handlers; those keep working, but each gets a
# redaction filter so what reaches the Prefect server is clean too.
FILTERED_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs")

_HANDLER_MARK = "_erphub_handler"


class RedactingFilter(logging.Filter):
    """Cleans a stdlib record in place (message, args, exception text) for handlers we do not format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        record.exc_info = None  # the traceback survives as the redacted exc_text
        return True


def _keep_exception_text(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A record another handler's `RedactingFilter` already cleaned carries its traceback as text only."""
    record = event_dict.get("_record")
    if record is not None and not record.exc_info and record.exc_text and "exception" not in event_dict:
        event_dict["exception"] = record.exc_text
    return event_dict


class _RedactedJSON:
    """JSON renderer with a last pass over the rendered line for registered secret values.

    The event dict is already clean; this catches values rendered only here (``repr`` of objects).
    The last pass touches secret values only, never keys or punctuation, so the line stays valid JSON.
    """

    def __init__(self) -> None:
        self._render = structlog.processors.JSONRenderer(ensure_ascii=False, default=str)

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        return redact_secrets_only(str(self._render(logger, name, event_dict)))


class _RedactedConsole:
    def __init__(self, colors: bool) -> None:
        self._render = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )

    def __call__(self, logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        return redact_secrets_only(self._render(logger, name, event_dict))


def choose_format(fmt: LogFormat, stream: TextIO) -> Literal["json", "console"]:
    """``auto`` means console lines on a terminal and JSON lines anywhere else."""
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return "console" if isatty is not None and isatty() else "json"
    if fmt not in ("json", "console"):
        raise ValueError(f"log format must be auto, json or console, not {fmt!r}")
    return fmt


def _level_number(level: int | str) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    fmt: LogFormat = "auto",
    level: int | str = "INFO",
    secrets: Iterable[str] = (),
    *,
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and the stdlib root logger; safe to call again (it replaces its own handler).

    *stream* defaults to stderr so that command output on stdout (tables, ``--json``) stays clean;
    its TTY-ness decides ``auto``.
    """
    add_secrets(secrets)
    out = stream if stream is not None else sys.stderr
    chosen = choose_format(fmt, out)
    numeric_level = _level_number(level)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor = _RedactedJSON() if chosen == "json" else _RedactedConsole(colors=out.isatty())

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _keep_exception_text],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            RedactProcessor(),
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)

    for name in ROUTED_LOGGERS:
        lib = logging.getLogger(name)
        for h in list(lib.handlers):
            lib.removeHandler(h)
        lib.propagate = True
    # httpx logs every request at INFO; at INFO that is noise, at DEBUG it is wanted.
    logging.getLogger("httpx").setLevel(max(numeric_level, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(numeric_level, logging.WARNING))
    attach_redaction_filters(FILTERED_LOGGERS)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def ensure_logging(secrets: Iterable[str] = ()) -> None:
    """Configure logging unless this process already did (a flow run Prefect started in a subprocess
    has not: its logs must be structured and redacted too). ERPHUB_LOG_FORMAT picks the format."""
    if any(getattr(h, _HANDLER_MARK, False) for h in logging.getLogger().handlers):
        add_secrets(secrets)
        return
    wanted = os.environ.get("ERPHUB_LOG_FORMAT", "auto")
    fmt: LogFormat = "json" if wanted == "json" else "console" if wanted == "console" else "auto"
    configure_logging(fmt=fmt, level="INFO", secrets=secrets)


def attach_redaction_filters(logger_names: Iterable[str]) -> None:
    """Add a `RedactingFilter` to every handler of the named loggers (call again after Prefect
    configures its logging, which replaces handlers)."""
    for name in logger_names:
        for h in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in h.filters):
                h.addFilter(RedactingFilter())


def get_logger(name: str | None = None, **initial: Any) -> Any:
    return structlog.stdlib.get_logger(name, **initial)


@contextmanager
def run_context(pipeline: str, run_id: str, system: str | None = None) -> Iterator[None]:
    """Bind ``pipeline``, ``run_id`` and ``system`` to every event logged inside the block."""
    with bound_contextvars(pipeline=pipeline, run_id=run_id, system=system):
        yield


@contextmanager
def system_context(system: str) -> Iterator[None]:
    """Within a run, name the system currently being talked to (source while reading, target while
    writing); the previous value comes back afterwards."""
    with bound_contextvars(system=system):
        yield
