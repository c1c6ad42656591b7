"""Structured logging for erphub: structlog and the stdlib (httpx, prefect, uvicorn) through one redactor.

Everything ends in one stdlib handler whose `ProcessorFormatter` runs the redaction processor and then
renders either JSON lines (production, pipes, files) or readable console lines (a terminal). A
structlog event and an ``httpx`` INFO line therefore get the same timestamp, level, run context and
secret filtering.

An optional log file (`logging.file` in the config) gets the same lines as JSON whatever the terminal
format, through `SharedRotatingFileHandler`: several processes (erphub serve, Prefect's flow-run
subprocesses, one-shot runs) append to one file, and whichever rotates it, the others notice and reopen.

Prefect's loggers: `PREFECT_LOGGING_SETTINGS_PATH` points at ``prefect_logging.yml`` beside this module.
It gives Prefect's loggers no console handler of their own (they propagate to the root, that is to
this module's handler) and never touches the root logger, so in JSON mode every line Prefect writes is
one JSON object with its traceback in the ``exception`` field. Its ``erphub`` handler factory
configures erphub's logging from the environment the moment Prefect sets up its logging, so a flow-run
subprocess's first line is JSON too.

Settings reach child processes through the environment (``ERPHUB_LOG_FORMAT``, ``ERPHUB_LOG_LEVEL``,
``ERPHUB_LOG_FILE``), which `configure_logging` exports.

Run context (``pipeline``, ``run_id``, ``system``) lives in structlog contextvars: `run_context` binds
it for the duration of a run and `system_context` switches the system for a stretch of work, so every
event in between carries all three keys.
"""

from __future__ import annotations

import logging
import logging.handlers
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
PREFECT_LOGGING_CONFIG = os.path.join(os.path.dirname(__file__), "prefect_logging.yml")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Size-rotated file shared by several processes: before writing, reopen when another process
    has rotated the file away (the path's inode changed), so nobody keeps writing into PATH.1."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            current = os.stat(self.baseFilename).st_ino
        except FileNotFoundError:
            current = None
        if self.stream is not None and current != os.fstat(self.stream.fileno()).st_ino:
            self.stream.close()
            self.stream = self._open()
        super().emit(record)


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


def _formatter(shared: list[Processor], renderer: Processor) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _keep_exception_text],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            RedactProcessor(),
            renderer,
        ],
    )


def configure_logging(
    fmt: LogFormat = "auto",
    level: int | str = "INFO",
    secrets: Iterable[str] = (),
    *,
    stream: TextIO | None = None,
    file: str | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
) -> None:
    """Set up structlog and the stdlib root logger; safe to call again (it replaces its own handlers).

    *stream* defaults to stderr so that command output on stdout (tables, ``--json``) stays clean;
    its TTY-ness decides ``auto``. *file*, when given, receives every line as JSON, rotated at
    *max_bytes* with *backups* old files kept.
    """
    add_secrets(secrets)
    out = stream if stream is not None else sys.stderr
    chosen = choose_format(fmt, out)
    numeric_level = _level_number(level)
    # Child processes (Prefect flow runs) log the same way: see `ensure_logging`.
    os.environ["ERPHUB_LOG_FORMAT"] = chosen
    os.environ["ERPHUB_LOG_LEVEL"] = logging.getLevelName(numeric_level)
    if file:
        os.environ["ERPHUB_LOG_FILE"] = file
        os.environ["ERPHUB_LOG_FILE_ROTATION"] = f"{max_bytes}:{backups}"
    else:  # a later call without a file: children must not keep writing to the old one
        os.environ.pop("ERPHUB_LOG_FILE", None)
        os.environ.pop("ERPHUB_LOG_FILE_ROTATION", None)

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor = _RedactedJSON() if chosen == "json" else _RedactedConsole(colors=out.isatty())

    handler: logging.Handler = logging.StreamHandler(out)
    handler.setFormatter(_formatter(shared, renderer))
    handlers = [handler]
    if file:
        os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
        file_handler = SharedRotatingFileHandler(file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        file_handler.setFormatter(_formatter(shared, _RedactedJSON()))
        handlers.append(file_handler)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    for h in handlers:
        setattr(h, _HANDLER_MARK, True)
        root.addHandler(h)
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
    has not: its logs must be structured and redacted too). ERPHUB_LOG_FORMAT, ERPHUB_LOG_LEVEL and
    ERPHUB_LOG_FILE (set by the parent's `configure_logging`) pick the format, level and file."""
    if any(getattr(h, _HANDLER_MARK, False) for h in logging.getLogger().handlers):
        add_secrets(secrets)
        return
    wanted = os.environ.get("ERPHUB_LOG_FORMAT", "auto")
    fmt: LogFormat = "json" if wanted == "json" else "console" if wanted == "console" else "auto"
    level = os.environ.get("ERPHUB_LOG_LEVEL", "INFO").upper()
    rotation = os.environ.get("ERPHUB_LOG_FILE_ROTATION", "")
    max_bytes, _, backups = rotation.partition(":")
    configure_logging(fmt=fmt, level=level if level in LEVELS else "INFO", secrets=secrets,
                      file=os.environ.get("ERPHUB_LOG_FILE") or None,
                      max_bytes=int(max_bytes) if max_bytes.isdigit() else 10 * 1024 * 1024,
                      backups=int(backups) if backups.isdigit() else 5)


def prefect_setup_handler() -> logging.Handler:
    """Named in ``prefect_logging.yml``: Prefect calls it while it sets up its logging, so erphub's
    handlers are on the root before Prefect's first line. Prefect's loggers propagate there; this
    handler itself writes nothing."""
    ensure_logging()
    return logging.NullHandler()


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
