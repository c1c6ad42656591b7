"""End-to-end sync benches, Jiandaoyun customers -> Kingdee on the sandboxes, each a ratio in one run.

    python bench/sync_bench.py [--only quota,hand,prefect,scale]

Each sandbox runs in its own process (bench/sandbox_proc.py), erphub as `erphub run crm_customers_to_erp`
in a child process with the demo's pipeline config (batch and page size as config/demo.yaml has them).

  quota    80 ms added to every sandbox request (sandbox/faults.py), the demo's quotas (Jiandaoyun 10
           req/s x 100 records, Kingdee 20 req/s x 100): erphub's records/s / what the quotas allow.
           Target >= 0.9.
  hand     no latency, the configured quotas lifted (per-endpoint ones included): erphub's records/s /
           bench/hand_loop.py's (one loop: read a page, look its keys up, save it). Target >= 0.8.
  prefect  no latency, quotas lifted, 20,000 records: wall time of `--engine prefect` / `--engine plain`,
           start-up included (it is part of what a user waits for), with a Prefect server running as
           the deployed hub has one (`prefect server start`, started once by the bench; the run finds
           it as it finds `erphub serve`'s). Target <= 1.15. Also, as information: a cold one-shot
           run that starts its own embedded Prefect server / plain; and the ratio with what a fresh
           process spends importing Prefect taken off each prefect run.
  scale    no latency, quotas lifted, at each size of ERPHUB_BENCH_SCALE (default 10000,100000,1000000):
           time per record (largest / smallest) flat within 20 %, peak RSS of the erphub process
           flat within 30 %, and an incremental run with nothing changed <= 2 % of the full run
           (at the largest size).

Sizes: ERPHUB_BENCH_QUOTA_RECORDS (20000), ERPHUB_BENCH_HAND_RECORDS (20000), ERPHUB_BENCH_PREFECT_RECORDS
(20000; ERPHUB_BENCH_PREFECT_REPEATS rounds of it, 3; ERPHUB_BENCH_HAND_REPEATS likewise for hand),
ERPHUB_BENCH_SCALE (10000,100000,1000000: the issue's sizes; the million takes about 7 minutes).
Records/s are records moved / the run's own seconds as `erphub run --json` reports them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import httpx
from common import (
    erphub_run,
    moved,
    quota_records_per_s,
    report,
    sandboxes,
    write_config,
)
from hand_loop import sync as hand_sync

from erphub.flows import prefect_db
from erphub.flows.prefect_env import free_port, record_server

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
    """ERPHUB_BENCH_HAND_REPEATS rounds (3) of the hand loop then erphub, each on fresh sandboxes; the
    ratio is the median of the rounds' own ratios. One round alone swung from 0.48 to 0.86 in a morning:
    the hand loop moved 3,000 to 5,900 records/s on the same machine, erphub 2,600 to 2,850."""
    n = size("ERPHUB_BENCH_HAND_RECORDS", HAND_RECORDS)
    repeats = size("ERPHUB_BENCH_HAND_REPEATS", 3)
    hand_rates, erphub_rates, requests, hand_requests = [], [], 0, 0
    for round_no in range(1, repeats + 1):
        with sandboxes(n, limits=False) as (jdy, kd):
            start = time.perf_counter()
            saved = hand_sync(jdy.url, kd.url)
            hand_rates.append(n / (time.perf_counter() - start))
            hand_requests = jdy.requests() + kd.requests()
        if saved != n:
            raise SystemExit(f"hand loop saved {saved} of {n}")
        with sandboxes(n, limits=False) as (jdy, kd):
            run = erphub_run(write_config(fresh(tmp, f"hand-{round_no}"), jdy, kd, quotas=False))
            check_moved("hand", run.result, n)
            erphub_rates.append(n / run.run_seconds)
            requests = jdy.requests() + kd.requests()
        print(f"  round {round_no}: erphub {erphub_rates[-1]:,.0f} rec/s, hand loop {hand_rates[-1]:,.0f} rec/s",
              flush=True)
    ratio = statistics.median(e / h for e, h in zip(erphub_rates, hand_rates, strict=True))
    report("(b) erphub / hand-written loop", ratio, 0.8, ">=",
           f"{n:,} records: erphub {'/'.join(f'{r:,.0f}' for r in erphub_rates)} rec/s ({requests:,} requests), "
           f"hand loop {'/'.join(f'{r:,.0f}' for r in hand_rates)} rec/s ({hand_requests:,} requests), both "
           f"unthrottled (erphub's quotas lifted, per-endpoint ones included); median of {repeats} rounds' ratios")


@contextmanager
def prefect_server(folder: Path) -> Iterator[str]:
    """A real `prefect server start` on a free loopback port, as a deployed hub runs one (`erphub serve`'s
    child, or a shared server); its home starts from the migrated template the embedded server keeps
    (flows/prefect_db.py) when there is one, so the bench spends no minute on migrations."""
    home = folder / "prefect-home"
    home.mkdir()
    template = prefect_db.template_path(version("prefect"))
    prefect_db.seed(home / prefect_db.DB_NAME, template)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING"}
    with (folder / "prefect-server.log").open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port), "--no-ui", "--analytics-off"],
                                  env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise SystemExit(f"prefect server exited with {server.returncode}: {folder / 'prefect-server.log'}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("prefect server did not answer within 180 s")
            time.sleep(0.25)
        # The first /admin/version a fresh server answers takes it about 0.5 s (measured: 0.535 s, then
        # 0.039 s); every Prefect client asks it first. A deployed server has answered it long before a
        # run, so the bench asks it once here rather than charge it to the first round's prefect run.
        httpx.get(f"{url}/admin/version", timeout=30).raise_for_status()
        yield url
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def engine_run(tmp: str, tag: str, n: int, engine: str, server_url: str | None = None) -> float:
    """Wall seconds of one `erphub run --engine ENGINE` (start-up and exit included) on fresh sandboxes
    and a fresh state folder. With `server_url`, the state folder names that Prefect server as
    `erphub serve` does for its hub (flows/prefect_env.py SERVER_FILE) and the run attaches to it."""
    with sandboxes(n, limits=False) as (jdy, kd):
        folder = fresh(tmp, tag)
        if server_url is not None:
            record_server(folder / ".erphub", server_url)
        saved = os.environ.pop("PREFECT_API_URL", None)  # only the state folder may point the run anywhere
        try:
            run = erphub_run(write_config(folder, jdy, kd, quotas=False), engine=engine)
        finally:
            if saved is not None:
                os.environ["PREFECT_API_URL"] = saved
        check_moved(tag, run.result, n)
    return run.seconds


def prefect(tmp: str) -> None:
    """(d) as the deployed hub runs it: a Prefect server is running (started here once) and the run uses it.
    The cold one-shot, which starts an embedded server itself, is reported as an information row.
    The server is asked its /admin/version once before the rounds: its first answer takes it about
    0.5 s, which a deployed server paid long before.
    ERPHUB_BENCH_PREFECT_REPEATS rounds (3) of the three runs back to back; the ratio is the median of the
    rounds' own ratios (a round's runs share the machine's load of the moment: on this shared 2-core
    machine plain alone varied 9.2-12.0 s within one bench)."""
    n = size("ERPHUB_BENCH_PREFECT_RECORDS", 20000)
    repeats = size("ERPHUB_BENCH_PREFECT_REPEATS", 3)
    times: dict[str, list[float]] = {"plain": [], "attached": [], "cold": []}
    with prefect_server(fresh(tmp, "prefect-server")) as url:
        imports = prefect_import_s()  # while the server runs, as during the runs it is taken off
        for i in range(repeats):
            times["plain"].append(engine_run(tmp, f"plain-{i}", n, "plain"))
            times["attached"].append(engine_run(tmp, f"attached-{i}", n, "prefect", url))
            times["cold"].append(engine_run(tmp, f"cold-{i}", n, "prefect"))
            print(f"  round {i + 1}: plain {times['plain'][-1]:.2f} s, prefect on the running server "
                  f"{times['attached'][-1]:.2f} s, prefect cold (embedded server) {times['cold'][-1]:.2f} s",
                  flush=True)
    def ratio(key: str) -> float:
        return statistics.median(t / p for t, p in zip(times[key], times["plain"], strict=True))

    def spread(key: str) -> str:
        return "/".join(f"{t:.1f}" for t in times[key])

    report("(d) --engine prefect / plain", ratio("attached"), 1.15, "<=",
           f"{n:,} records, a Prefect server running: prefect {spread('attached')} s, plain {spread('plain')} s "
           f"(wall, start-up included; median of {repeats} rounds' ratios)")
    report("(d) info: cold one-shot / plain", ratio("cold"), 1.15, "<=",
           f"no Prefect server running: the run starts an embedded one, {spread('cold')} s")
    without = statistics.median((t - imports) / p for t, p in zip(times["attached"], times["plain"], strict=True))
    report("(d) info: the same, less Prefect's import", without, 1.15, "<=",
           f"a fresh process spends {imports:.2f} s importing what `--engine prefect` adds to a plain run's "
           f"imports (Prefect and its flow engine; median of 5), taken off each prefect run")


# What a plain run of the bench's pipeline imports (the CLI, its runner with the engine, the two
# connectors and what they load), and that plus what `--engine prefect` adds: flows/sync.py with
# Prefect, and what Prefect loads on a flow's first call.
IMPORTS_PLAIN = ("import erphub.cli.main, erphub.cli.runner, erphub.connectors.jiandaoyun, "
                 "erphub.connectors.kingdee.connector, sqlalchemy.dialects.sqlite")
IMPORTS_PREFECT = IMPORTS_PLAIN + ", erphub.flows.sync, prefect.flow_engine, fastapi.encoders"


def prefect_import_s(rounds: int = 5) -> float:
    """Wall seconds a fresh interpreter spends importing what `--engine prefect` imports beyond what
    `--engine plain` does: the median of `rounds` differences."""
    def timed(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    return statistics.median(timed(IMPORTS_PREFECT) - timed(IMPORTS_PLAIN) for _ in range(rounds))


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
