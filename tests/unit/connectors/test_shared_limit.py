"""The hub-wide bucket in PostgreSQL: several "processes" (limiters that share nothing in memory) stay
within one system's quota together, where per-process buckets send N times it. Its table comes from the
store's migrations (0009), so every test here runs on a migrated store, and one on a store that is not."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from erphub.connectors.ratelimit import RateLimiter, shared_limiter
from erphub.connectors.shared_limit import TABLE, PostgresTokenBucket
from erphub.core.errors import StoreError
from erphub.sandbox.faults import max_in_window
from erphub.store import Store
from tests.conftest import postgres_rows

pytestmark = pytest.mark.postgres

RATE = 10.0
PROCESSES = 3
EACH = 8


def _send(limiters: list[RateLimiter]) -> list[float]:
    """Every limiter sends EACH requests from its own thread; the arrival times."""
    times: list[float] = []
    lock = threading.Lock()

    def client(limiter: RateLimiter) -> None:
        for _ in range(EACH):
            with limiter.slot(), lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=client, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def test_limiters_in_separate_processes_share_one_quota_through_postgres(migrated_postgres: str) -> None:
    name = f"crm-{uuid.uuid4().hex[:6]}"
    # A bucket object each, as each worker process builds its own: nothing shared but the database row.
    shared = [RateLimiter(RATE, global_bucket=PostgresTokenBucket(migrated_postgres, name, RATE))
              for _ in range(PROCESSES)]
    # The bucket admits RATE in any 1-s window with 0.11 s to spare (HEADROOM); a thread of this test that
    # wakes later than that on a loaded 2-core machine can add one (seen once at load 15). Per-process
    # buckets send ~2.7 x RATE (next test); the sandbox-side check is in tests/integration/test_scale_out.py.
    assert max_in_window(_send(shared), 1.0) <= RATE + 1


def test_per_process_buckets_send_n_times_the_quota() -> None:
    """What the shared bucket is for: the same load through in-memory buckets breaks the quota."""
    assert max_in_window(_send([RateLimiter(RATE) for _ in range(PROCESSES)]), 1.0) > RATE


def test_shared_limiter_takes_the_bucket_from_the_url_and_keeps_one_row_per_system(migrated_postgres: str) -> None:
    name = f"erp-{uuid.uuid4().hex[:6]}"
    limiter = shared_limiter(name, 5.0, shared_url=migrated_postgres)
    assert isinstance(limiter._global, PostgresTokenBucket)
    assert shared_limiter(name, 5.0) is not limiter  # the in-memory one is another limiter
    for _ in range(3):
        limiter.wait_turn()
    rows = postgres_rows(migrated_postgres, f"select tokens from {TABLE} where name = '{name}'")
    assert len(rows) == 1 and rows[0][0] < 0  # three turns from a burst of one: in debt, callers waited


def test_an_unmigrated_store_is_a_store_error_that_says_so_and_creates_nothing(postgres_schema: str) -> None:
    bucket = PostgresTokenBucket(postgres_schema, "crm", 5.0)
    with pytest.raises(StoreError, match="not migrated") as caught:
        bucket.reserve()
    assert TABLE in str(caught.value) and "erphub deploy" in str(caught.value)
    # The bucket never makes its own table: only the migration does (workers never race on DDL).
    assert postgres_rows(postgres_schema, f"select 1 from information_schema.tables where table_name = '{TABLE}' "
                                          "and table_schema = current_schema()") == []


def test_a_bucket_table_made_before_migration_0009_is_kept_by_it(postgres_schema: str) -> None:
    """Hubs that used shared limits before 0009 have the table already (shared_limit made it then)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_schema)
    with engine.begin() as conn:  # the DDL and a row as erphub before 0009 left them
        conn.exec_driver_sql(f"create table {TABLE} (name text primary key, tokens double precision not null, "
                             "stamp double precision not null)")
        conn.exec_driver_sql(f"insert into {TABLE} values ('crm', -2.5, 1.0)")
    engine.dispose()
    Store(postgres_schema).close()
    assert postgres_rows(postgres_schema, f"select name, tokens from {TABLE}") == [("crm", -2.5)]
    assert postgres_rows(postgres_schema, "select version_num from alembic_version")[0][0] >= "0009"


def test_a_shared_bucket_needs_postgresql() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        PostgresTokenBucket("sqlite:///x.db", "crm", 5.0)
