"""Into PostgreSQL: erphub's `sql` connector against dlt, the same 20,000 rows, in one run.

    python bench/sql_bench.py [--records 20000]     (or ERPHUB_BENCH_SQL_RECORDS)

Both load the same customers into an empty table of a fresh PostgreSQL database on 127.0.0.1,
as upserts by the customer number (erphub: the `sql` connector's upsert by `key_column`; dlt:
`write_disposition="merge"` with that primary key), and both pay for the same compiled mapping
inside the timed part. erphub runs its engine in process (memory source paging 1,000 rows as a
staging table does, SQLite store in a temp dir, the sql target's default batch of 1,000); dlt runs
`pipeline.run` with its own state in a temp dir. Target (issue 13): erphub's records/s / dlt's
>= 1.0, the median of ERPHUB_BENCH_SQL_REPEATS rounds' ratios (3: one round alone swung 0.88-1.05 on this
shared machine). dlt comes from the `bench` extra (`pip install -e '.[bench]'`, which `make bench` does).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from typing import Any

import sqlalchemy as sa
from common import report

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.connectors.sql import SqlConnector, SqlEntitySettings, SqlSettings
from erphub.engine import Pipeline, run_pipeline
from erphub.mappings.compiler import compile_text
from erphub.monitoring.logging import configure_logging
from erphub.store import Store

ADMIN_URL = os.environ.get("ERPHUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

# The memory source stands in for a staging table: it pages as the sql connector does (1,000 rows;
# its own default is the 100 of a connector that names no maximum). The batch is the sql target's 1,000.
PAGE = 1000

MAPPING = """\
source: customer
target: customer
key: number
fields:
  number: {from: customer_code, transforms: [trim, upper]}
  name: {from: customer_name, transforms: [collapse_spaces], validate: {required: true}}
  phone: {from: phone, transforms: [phone]}
  city: {from: address.city}
  address: {template: "{address.province}{address.city}{address.detail}"}
  credit_limit: {from: credit_limit}
"""


def source_rows(n: int) -> list[dict[str, Any]]:
    return [{"customer_code": f"cus-{i:06d}", "customer_name": f"上海星辰精密机械有限公司  {i}",
             "phone": f"+86 138 {i % 10000:04d} {i % 7777:04d}", "credit_limit": 1000 * (i % 50),
             "address": {"province": "上海市", "city": "浦东新区", "detail": f"张江路{i}号"}} for i in range(n)]


def erphub_load(url: str, rows: list[dict[str, Any]], tmp: str) -> float:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE bench_customer (id bigserial PRIMARY KEY, number text NOT NULL UNIQUE, name text, "
            "phone text, city text, address text, credit_limit numeric(18,2), updated_at timestamptz)"))
    engine.dispose()
    system = f"bench-sql-source-{uuid.uuid4().hex[:8]}"  # each round its own: a second put would be a new change
    crm = memory_system(system)
    for row in rows:
        crm.put("customer", row)
    source = MemoryConnector(MemorySettings(system=system, entities={"customer": "customer_code"}),
                             SystemContext(name="crm"))
    target = SqlConnector(SqlSettings(url=url, entities={"customer": SqlEntitySettings(
        table="bench_customer", key_column="number")}), SystemContext(name="pg"))
    pipeline = Pipeline("bench_sql", "crm", "customer", source, "pg", "customer", target,
                        compile_text(MAPPING, file="sql_bench.yaml"), page_size=PAGE)
    store = Store(f"sqlite:///{tmp}/sql_bench.db")
    start = time.perf_counter()
    result = run_pipeline(pipeline, store)
    seconds = time.perf_counter() - start
    store.close()
    target.close()
    check = sa.create_engine(url)
    with check.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM bench_customer")).scalar_one()
    check.dispose()
    if count != len(rows):
        raise SystemExit(f"erphub loaded {count} of {len(rows)} rows: {result}")
    return seconds


def dlt_load(url: str, rows: list[dict[str, Any]], tmp: str) -> float:
    import dlt

    plan = compile_text(MAPPING, file="sql_bench.yaml")
    parsed = sa.make_url(url)
    # dlt insists on a password; the local server trusts loopback, so any stands in for none.
    credentials = parsed.set(drivername="postgresql", password=parsed.password or "trust").render_as_string(
        hide_password=False)
    pipeline = dlt.pipeline(pipeline_name="erphub_bench", pipelines_dir=f"{tmp}/dlt",
                            destination=dlt.destinations.postgres(credentials=credentials),
                            dataset_name="dlt_bench")

    def mapped() -> Any:
        for row in rows:
            yield plan.apply(row).data  # type: ignore[union-attr]

    start = time.perf_counter()
    pipeline.run(mapped(), table_name="customer", write_disposition="merge", primary_key="number")
    seconds = time.perf_counter() - start
    check = sa.create_engine(url)
    with check.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM dlt_bench.customer")).scalar_one()
    check.dispose()
    if count != len(rows):
        raise SystemExit(f"dlt loaded {count} of {len(rows)} rows")
    return seconds


def fresh_database(admin: sa.Engine) -> str:
    name = f"erphub_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=int(os.environ.get("ERPHUB_BENCH_SQL_RECORDS", 20000)))
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("ERPHUB_BENCH_SQL_REPEATS", 3)),
                        help="rounds of both loads; the ratio is the median of the rounds' own ratios")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    configure_logging(fmt="console", level="WARNING")
    rows = source_rows(args.records)
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []
    seconds: dict[str, list[float]] = {"dlt": [], "erphub": []}
    try:
        with tempfile.TemporaryDirectory(prefix="erphub-sqlbench-") as tmp:
            for i in range(args.repeats):
                order = (("dlt", dlt_load), ("erphub", erphub_load))
                # Neither always goes first (with an odd number of rounds dlt goes first once more).
                for tool, load in order if i % 2 == 0 else order[::-1]:
                    made.append(fresh_database(admin))
                    url = sa.make_url(ADMIN_URL).set(database=made[-1]).render_as_string(hide_password=False)
                    folder = os.path.join(tmp, f"{tool}-{i}")  # a fresh store, and fresh dlt state
                    os.mkdir(folder)
                    seconds[tool].append(load(url, rows, folder))
                print(f"  round {i + 1}: erphub {args.records / seconds['erphub'][-1]:,.0f} rows/s, "
                      f"dlt {args.records / seconds['dlt'][-1]:,.0f} rows/s", flush=True)
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    n = args.records

    def rates(tool: str) -> str:
        return "/".join(f"{n / s:,.0f}" for s in seconds[tool])

    ratio = statistics.median(d / e for d, e in zip(seconds["dlt"], seconds["erphub"], strict=True))
    report("(c) PostgreSQL: erphub sql / dlt", ratio, 1.0, ">=",
           f"{n:,} rows: erphub {rates('erphub')} rows/s, dlt {rates('dlt')} rows/s; median of {args.repeats} "
           "rounds' ratios")


if __name__ == "__main__":
    main()
