"""Contract harness for the sql connector on the real PostgreSQL (127.0.0.1:5432, db `test`).

Uses a fresh schema per harness, dropped afterwards; see `sql_sqlite` for the shared backend code
and the capabilities this connector cannot offer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.contract.harnesses.sql_sqlite import SqlHarness, harness_for


@contextmanager
def make_harness() -> Iterator[SqlHarness]:
    with harness_for("postgres") as harness:
        yield harness
