"""Counters that survive processes: what another process counted into the metrics folder is on this
process's /metrics after that process has exited; and the shared log file survives another process's
rotation."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from erphub.monitoring.exposition import MetricsView
from erphub.monitoring.logging import SharedRotatingFileHandler
from erphub.monitoring.multiprocess import reset
from tests.unit.monitoring.fakes import FakeStoreState

COUNT_AND_EXIT = """
import sys
from erphub.monitoring import metrics
metrics.count_auth_failure("mp_erp")
metrics.observe_http("mp_erp", 401, 0.2)
metrics.dead_letters.labels(pipeline="mp_orders").set(7)
"""


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def test_counts_of_exited_processes_reach_the_metrics_view_and_reset_starts_a_new_epoch(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}  # what erphub serve hands its children
    for _ in range(2):  # two scheduled runs, each its own (finished) process
        subprocess.run([sys.executable, "-c", COUNT_AND_EXIT], env=env, check=True, timeout=60)

    from erphub.monitoring.multiprocess import FolderCollector

    view = MetricsView(FakeStoreState(open_letters={"mp_orders": 3}), registry=FolderCollector(folder))
    series = _samples(generate_latest(view))
    assert series[("erphub_auth_failures_total", (("system", "mp_erp"),))] == 2
    assert series[("erphub_http_requests_total", (("status_class", "4xx"), ("system", "mp_erp")))] == 2
    assert series[("erphub_http_request_duration_seconds_count", (("system", "mp_erp"),))] == 2
    # The store is the truth for the dead-letter gauge: once, from the store, no per-process copy.
    dead_letters = {k: v for k, v in series.items() if k[0] == "erphub_dead_letters"}
    assert dead_letters == {("erphub_dead_letters", (("pipeline", "mp_orders"),)): 3}
    assert not [k for k in series if "pid" in dict(k[1])]

    reset(folder)
    assert ("erphub_auth_failures_total", (("system", "mp_erp"),)) not in _samples(generate_latest(
        MetricsView(FakeStoreState(), registry=FolderCollector(folder))))


def test_a_process_keeps_writing_to_the_log_file_after_another_one_rotated_it(tmp_path: Path) -> None:
    path = tmp_path / "erphub.log"
    first = SharedRotatingFileHandler(str(path), maxBytes=200, backupCount=3, encoding="utf-8")
    second = SharedRotatingFileHandler(str(path), maxBytes=200, backupCount=3, encoding="utf-8")

    def line(handler: logging.Handler, text: str) -> None:
        handler.emit(logging.LogRecord("t", logging.INFO, __file__, 1, json.dumps({"event": text}), None, None))

    line(first, "a" * 150)
    line(second, "b" * 150)      # over 200: the second one rotates erphub.log to erphub.log.1
    line(first, "after")         # the first one notices and writes into the new erphub.log
    first.close()
    second.close()
    assert "after" in path.read_text()
    assert "after" not in (tmp_path / "erphub.log.1").read_text()
