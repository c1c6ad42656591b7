"""End-to-end sync benches, Jiandaoyun customers -> Kingdee on the sandboxes, each a ratio in one run.

    python bench/sync_bench.py [--only quota,hand,prefect,scale]

Each sandbox runs in its own process (bench/sandbox_proc.py), erphub as `erphub run crm_customers_to_erp`
in a child process with the demo's pipeline config (batch and page size as config/demo.yaml has them).

  quota    80 ms added to every sandbox request (sandbox/faults.py), the demo's quotas (Jiandaoyun 10
           req/s x 100 records, Kingdee 20 req/s x 100): erphub's records/s / what the quotas allow.
           Target >= 0.9.
  hand     no latency, quotas lifted: erphub's records/s / bench/hand_loop.py's (one loop: read a page,
           look its keys up, save it). Target >= 0.8.
  prefect  no latency, quotas lifted, 20,000 records: wall time of `--engine prefect` / `--engine plain`,
           start-up included (it is part of what a user waits for). Target <= 1.15.
  scale    no latency, quotas lifted, at each size of ERPHUB_BENCH_SCALE (default 10000,100000,1000000):
           time per record (largest / smallest) flat within 20 %, peak RSS of the erphub process
           flat within 30 %, and an incremental run with nothing changed <= 2 % of the full run
           (at the largest size).

Sizes: ERPHUB_BENCH_QUOTA_RECORDS (20000), ERPHUB_BENCH_HAND_RECORDS (20000), ERPHUB_BENCH_PREFECT_RECORDS
(20000), ERPHUB_BENCH_SCALE (10000,100000,1000000: the issue's sizes; the million takes about 7 minutes).
Records/s are records moved / the run's own seconds as `erphub run --json` reports them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import (
    erphub_run,
    moved,
    quota_records_per_s,
    report,
    sandboxes,
    write_config,
)
from hand_loop import sync as hand_sync

LATENCY_S = 0.08
# The measurement size (20,000 customers). At 5,000 a run's fixed cost (login, lease, the first
# page's wait, the last batch's save) weighs four times as much: (a) measured 0.880 at 5,000 and 0.915 at
# 20,000 on the same quiet machine.
QUOTA_RECORDS = 20_000
HAND_RECORDS = 20_000


def size(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def fresh(folder: str, tag: str) -> Path:
    path = Path(folder) / tag
    path.mkdir()
    return path


def check_moved(tag: str, result: dict[str, object], n: int) -> None:
    got = moved(result)  # type: ignore[arg-type]
    if got != n:
        raise SystemExit(f"{tag}: erphub moved {got} of {n} records: {result}")


def quota(tmp: str) -> None:
    n = size("ERPHUB_BENCH_QUOTA_RECORDS", QUOTA_RECORDS)
    with sandboxes(n, limits=True) as (jdy, kd):
        jdy.latency(LATENCY_S)
        kd.latency(LATENCY_S)
        config = write_config(fresh(tmp, "quota"), jdy, kd, quotas=True)
        run = erphub_run(config)
        check_moved("quota", run.result, n)
        requests = jdy.requests() + kd.requests()
    allowed = quota_records_per_s(config)
    rate = n / run.run_seconds
    report("(a) quota use, 80 ms latency", rate / allowed, 0.9, ">=",
           f"{n:,} records: erphub {rate:,.0f} rec/s, quotas allow {allowed:,.0f}; {requests:,} requests")


def hand(tmp: str) -> None:
    n = size("ERPHUB_BENCH_HAND_RECORDS", HAND_RECORDS)
    with sandboxes(n, limits=False) as (jdy, kd):
        start = time.perf_counter()
        saved = hand_sync(jdy.url, kd.url)
        hand_s = time.perf_counter() - start
        hand_requests = jdy.requests() + kd.requests()
    if saved != n:
        raise SystemExit(f"hand loop saved {saved} of {n}")
    with sandboxes(n, limits=False) as (jdy, kd):
        run = erphub_run(write_config(fresh(tmp, "hand"), jdy, kd, quotas=False))
        check_moved("hand", run.result, n)
        requests = jdy.requests() + kd.requests()
    report("(b) erphub / hand-written loop", (n / run.run_seconds) / (n / hand_s), 0.8, ">=",
           f"{n:,} records: erphub {n / run.run_seconds:,.0f} rec/s ({requests:,} requests), "
           f"hand loop {n / hand_s:,.0f} rec/s ({hand_requests:,} requests)")


def prefect(tmp: str) -> None:
    n = size("ERPHUB_BENCH_PREFECT_RECORDS", 20000)
    times = {}
    for engine in ("plain", "prefect"):
        with sandboxes(n, limits=False) as (jdy, kd):
            run = erphub_run(write_config(fresh(tmp, f"engine-{engine}"), jdy, kd, quotas=False), engine=engine)
            check_moved(engine, run.result, n)
            times[engine] = run.seconds
    report("(d) --engine prefect / plain", times["prefect"] / times["plain"], 1.15, "<=",
           f"{n:,} records: prefect {times['prefect']:.1f} s, plain {times['plain']:.1f} s (wall, start-up included)")


def scale(tmp: str) -> None:
    sizes = sorted(int(s) for s in os.environ.get("ERPHUB_BENCH_SCALE", "10000,100000,1000000").split(",") if s.strip())
    per_record, rss, incremental = {}, {}, {}
    for n in sizes:
        with sandboxes(n, limits=False) as (jdy, kd):
            config = write_config(fresh(tmp, f"scale-{n}"), jdy, kd, quotas=False)
            full = erphub_run(config)
            check_moved(f"scale {n}", full.result, n)
            again = erphub_run(config)
            if moved(again.result):
                raise SystemExit(f"scale {n}: the no-change run moved records: {again.result}")
        per_record[n] = full.run_seconds / n
        rss[n] = full.max_rss_mib
        incremental[n] = again.run_seconds / full.run_seconds
        print(f"  {n:>9,} records: {per_record[n] * 1e6:,.0f} us/record, peak RSS {rss[n]:,.0f} MiB, "
              f"no-change run {again.run_seconds:.2f} s of {full.run_seconds:.1f} s", flush=True)
    small, large = sizes[0], sizes[-1]
    span = f"{small:,} -> {large:,}"
    report("(e) time/record, largest / smallest", per_record[large] / per_record[small], 1.2, "<=",
           f"{span}: {per_record[small] * 1e6:,.0f} -> {per_record[large] * 1e6:,.0f} us/record")
    report("(e) peak RSS, largest / smallest", rss[large] / rss[small], 1.3, "<=",
           f"{span}: {rss[small]:,.0f} -> {rss[large]:,.0f} MiB")
    report("(e) no-change run / full run", incremental[large], 0.02, "<=", f"at {large:,} records")


BENCHES = {"quota": quota, "hand": hand, "prefect": prefect, "scale": scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated, of {', '.join(BENCHES)}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="erphub-bench-") as tmp:
        for name in args.only.split(","):
            print(f"-- {name}", flush=True)
            BENCHES[name.strip()](tmp)


if __name__ == "__main__":
    main()
