"""Counters that survive processes: prometheus-client's multiprocess mode over one metrics folder.

Why multiprocess mode and not counters kept in the store: erphub's counters are bumped on hot paths
(every HTTP request to a vendor, every record) in several processes at once — `erphub serve` (webhook
receiver and inbox worker), every scheduled flow run Prefect starts in its own subprocess, one-shot
`erphub run`s. A store row per increment would be a database write per HTTP request and a lock fight
between processes; prometheus-client's multiprocess mode writes each increment to a small memory-mapped
file of the process (no lock, no I/O wait), and `/metrics` sums every file at scrape time. Counters of a
process that has ended stay in its file, so a failed scheduled run's `erphub_auth_failures_total` is still
on `/metrics` after its subprocess exited.

How a process joins: `enable(folder)` sets ``PROMETHEUS_MULTIPROC_DIR`` (children such as Prefect's flow
run subprocesses inherit it; prometheus-client reads it when it is imported there) and switches this
process's value class before any labelled child is created. `erphub serve` empties the folder when it
starts: it is the counters' epoch, exactly like a process restart for a single-process exporter, and
Prometheus' `increase()`/`rate()` handle that reset; it also keeps the folder from growing without end
(one file per process that ever counted).

Gauges: the alert-facing ones come from the store at scrape time (`exposition.StoreCollector`); the
in-process copies are merged per their ``multiprocess_mode`` (``max``/``mostrecent``), so no ``pid``
label leaks into the exposition.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"


def folder() -> Path | None:
    """The metrics folder this process counts into, or None when it keeps counters in memory."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def enable(directory: Path) -> Path:
    """Count into *directory* from now on, here and in every child process started afterwards.

    Call it before the first labelled metric child is created (the CLI does so right after reading
    the config); children created before keep counting in memory only.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()
    return directory


def reset(directory: Path) -> None:
    """Start a new counting epoch: remove every process's file (erphub serve does this on start)."""
    for f in directory.glob("*.db"):
        f.unlink(missing_ok=True)


class FolderCollector(Collector):
    """Every process's counters, histograms and gauges of the folder, summed (read at each scrape)."""

    def __init__(self, directory: Path) -> None:
        self._collector = MultiProcessCollector(None, path=str(directory))

    def collect(self) -> Iterator[Metric]:
        yield from self._collector.collect()
