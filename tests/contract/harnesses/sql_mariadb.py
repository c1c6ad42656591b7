"""Contract harness for the sql connector on the real MariaDB (127.0.0.1:3306, db `test`).

Uses a fresh table and a dedicated password user (so the secret-leak check has a real secret);
see `sql_sqlite` for the shared backend code and the capabilities this connector cannot offer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.contract.harnesses.sql_sqlite import SqlHarness, harness_for


@contextmanager
def make_harness() -> Iterator[SqlHarness]:
    with harness_for("mariadb") as harness:
        yield harness
