"""Log format selection and the run context every event carries."""

from __future__ import annotations

import io
import json
import logging

import pytest

from erphub.monitoring.logging import choose_format, configure_logging, get_logger, run_context, system_context
from tests.unit.monitoring.fakes import TTYStream


def test_auto_picks_console_on_a_terminal_and_json_elsewhere() -> None:
    assert choose_format("auto", TTYStream()) == "console"
    assert choose_format("auto", io.StringIO()) == "json"
    assert choose_format("json", TTYStream()) == "json"
    assert choose_format("console", io.StringIO()) == "console"
    with pytest.raises(ValueError, match="log format"):
        choose_format("xml", io.StringIO())  # type: ignore[arg-type]


def test_json_lines_carry_pipeline_run_id_and_system(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("auto", "INFO", stream=out)
    log = get_logger("erphub.engine")
    log.info("before run")
    with run_context("orders", "r-42", "jiandaoyun"):
        log.info("page read", records=100)
        with system_context("kingdee"):
            log.info("batch written", created=3)
            logging.getLogger("uvicorn.error").warning("stdlib inside run")
        log.info("next page")
    log.info("after run")

    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == [
        "before run", "page read", "batch written", "stdlib inside run", "next page", "after run",
    ]
    for e in events[1:5]:
        assert e["pipeline"] == "orders" and e["run_id"] == "r-42"
        assert {"timestamp", "level", "logger"} <= set(e)
    assert [e["system"] for e in events[1:5]] == ["jiandaoyun", "kingdee", "kingdee", "jiandaoyun"]
    assert "pipeline" not in events[0] and "run_id" not in events[5]
    assert events[1]["records"] == 100 and events[1]["level"] == "info"
    assert events[3]["logger"] == "uvicorn.error" and events[3]["level"] == "warning"


def test_console_lines_are_readable_not_json(restore_logging: None) -> None:
    out = TTYStream()
    configure_logging("auto", "INFO", stream=out)
    with run_context("orders", "r-7", "tryton"):
        get_logger("erphub").info("batch written", created=3)
    line = out.getvalue().strip()
    assert not line.startswith("{")
    # colours are on for a terminal; strip ANSI codes before reading the words
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
    assert "batch written" in plain and "created=3" in plain and "run_id=r-7" in plain


def test_level_filters_and_reconfiguring_does_not_duplicate(restore_logging: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "INFO", stream=first)
    configure_logging("json", "WARNING", stream=second)
    log = get_logger("erphub")
    log.info("quiet")
    log.warning("loud")
    logging.getLogger("httpx").info("HTTP Request: GET /")  # httpx INFO is below WARNING
    assert first.getvalue() == ""
    assert [json.loads(x)["event"] for x in second.getvalue().splitlines()] == ["loud"]


def test_unknown_level_is_rejected(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", "LOUD", stream=io.StringIO())
