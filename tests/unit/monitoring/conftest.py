"""Fixtures for the monitoring tests: a clean secret registry and a clean logging setup per test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from erphub.monitoring import redaction


@pytest.fixture(autouse=True)
def _clean_secrets() -> Iterator[None]:
    redaction.clear_secrets()
    yield
    redaction.clear_secrets()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
