"""Engine throughput: records per second through read -> map -> classify -> write -> commit.

    python bench/engine_bench.py [--records 5000]

Compared in one run, on the same records, memory connectors and a SQLite store in a temp dir:
  mapping only      plan.apply over the records, no store, no writes (the ceiling)
  engine, batch 100 the real path: one link query, one write call and one transaction per batch
  engine, batch 1   the naive path: one write and one store transaction per record
  unchanged re-run  a --full re-read where links find nothing to write
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from erphub.connectors.base import SystemContext
from erphub.connectors.memory import MemoryConnector, MemorySettings, memory_system
from erphub.engine import Pipeline, run_pipeline
from erphub.mappings.compiler import compile_text
from erphub.monitoring.logging import configure_logging
from erphub.store import Store

ROOT = Path(__file__).resolve().parent.parent

MAPPING = """\
source: customer
target: customer
key: FNumber
fields:
  FNumber: {from: customer_code, transforms: [trim, upper]}
  FName: {from: customer_name, transforms: [collapse_spaces], validate: {required: true}}
  FTEL: {from: phone, transforms: [phone]}
  FADDRESS: {template: "{address.province}{address.city}{address.detail}"}
  FCreateOrgId: {const: {FNumber: "100"}}
"""


def seed(tag: str, n: int) -> None:
    crm = memory_system(f"crm-{tag}")
    for i in range(n):
        crm.put("customer", {"customer_code": f"cus-{i:06d}", "customer_name": f"上海星辰精密机械有限公司 {i}",
                             "phone": f"+86 138 {i % 10000:04d} {i % 7777:04d}",
                             "address": {"province": "上海市", "city": "浦东新区", "detail": f"张江路{i}号"}})


def pipeline(tag: str, batch: int) -> Pipeline:
    plan = compile_text(MAPPING, file="bench.yaml")
    crm = MemoryConnector(MemorySettings(system=f"crm-{tag}", entities={"customer": "customer_code"}),
                          SystemContext(name="crm"))
    erp = MemoryConnector(MemorySettings(system=f"erp-{tag}", entities={"customer": "FNumber"}),
                          SystemContext(name="erp"))
    return Pipeline("bench", "crm", "customer", crm, "erp", "customer", erp, plan, batch_size=batch, page_size=500)


def timed(label: str, n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    rate = n / (time.perf_counter() - start)
    print(f"  {label:<22} {rate:>10,.0f} records/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=5000)
    args = parser.parse_args()
    n = args.records
    configure_logging(fmt="console", level="WARNING")  # the table is the output, not per-run log lines
    print(f"engine throughput, {n} records, memory connectors, SQLite store")
    with tempfile.TemporaryDirectory() as tmp:
        seed("fast", n)
        seed("naive", n)
        records = [r.data for r in memory_system("crm-fast").all("customer")]
        plan = compile_text(MAPPING, file="bench.yaml")
        ceiling = timed("mapping only", n, lambda: [plan.apply(r) for r in records])
        fast_store, naive_store = Store(f"sqlite:///{tmp}/fast.db"), Store(f"sqlite:///{tmp}/naive.db")
        fast = pipeline("fast", 100)
        batched = timed("engine, batch 100", n, lambda: run_pipeline(fast, fast_store))
        naive = timed("engine, batch 1", n, lambda: run_pipeline(pipeline("naive", 1), naive_store))
        rerun = timed("unchanged re-run", n, lambda: run_pipeline(fast, fast_store, full=True))
        fast_store.close()
        naive_store.close()
    print(f"  batch 100 / batch 1:       {batched / naive:5.1f}x")
    print(f"  batch 100 / mapping only:  {batched / ceiling:5.2f}x (the share of time mapping is not the cost)")
    print(f"  unchanged / first run:     {rerun / batched:5.1f}x")


if __name__ == "__main__":
    main()
