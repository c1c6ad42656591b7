"""Shared plumbing of the end-to-end benches: sandboxes in their own processes, the bench config,
`erphub run` as a child process with its own peak RSS, and the result lines `run_all.py` tabulates.

Every bench prints its results as lines `BENCH {json}`; `run_all.py` collects them into one table.
A result is a ratio measured against a baseline in the same run, with its target:
`{"bench": ..., "ratio": 0.42, "target": 0.9, "op": ">=", "detail": "erphub 420 rec/s, quota 1,000 rec/s"}`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from erphub.connectors.registry import connector_class

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
DEMO_CONFIG = ROOT / "config/demo.yaml"
DEMO_ENV = ROOT / "config/demo.env"
PIPELINE = "crm_customers_to_erp"  # Jiandaoyun customers -> Kingdee BD_Customer, as the demo configures it
ERPHUB = [sys.executable, "-m", "erphub.cli.main"]


def report(bench: str, ratio: float, target: float, op: str, detail: str = "") -> bool:
    """Print one result line for run_all.py (and a readable line for a bench run on its own)."""
    ok = ratio >= target if op == ">=" else ratio <= target
    print(f"  {bench}: {ratio:.3f} (target {op} {target}) {'PASS' if ok else 'MISS'}  {detail}", flush=True)
    print("BENCH " + json.dumps({"bench": bench, "ratio": ratio, "target": target, "op": op, "detail": detail},
                                ensure_ascii=False), flush=True)
    return ok


# --- sandboxes ---------------------------------------------------------------------------------------


class Sandbox:
    """One sandbox served by bench/sandbox_proc.py in a child process (its own GIL and core)."""

    def __init__(self, name: str, *, customers: int = 0, enforce_limits: bool = True) -> None:
        args = [sys.executable, str(HERE / "sandbox_proc.py"), name, "--customers", str(customers)]
        if not enforce_limits:
            args.append("--no-limits")
        self.name = name
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        self._url = ""

    @property
    def url(self) -> str:
        """The base URL, once the child has seeded and serves (the first call waits for it)."""
        if not self._url:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().strip()
            if not line.startswith("URL "):
                self.stop()
                raise RuntimeError(f"sandbox {self.name} did not start: {line!r}")
            self._url = line[4:]
        return self._url

    def latency(self, seconds: float) -> None:
        """Every request to this sandbox waits `seconds` first (sandbox/faults.py, out of process)."""
        httpx.post(f"{self.url}/__sandbox__/faults", json={"endpoint": "*", "latency_s": seconds}).raise_for_status()

    def requests(self) -> int:
        """Requests served so far (the fault middleware's request log), control calls excluded."""
        log = httpx.get(f"{self.url}/__sandbox__/requests", timeout=60).json()
        return sum(1 for _at, path, _status in log["requests"] if "__sandbox__" not in path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def sandboxes(customers: int, *, limits: bool) -> Iterator[tuple[Sandbox, Sandbox]]:
    """A Jiandaoyun sandbox seeded with `customers` formal customers and an empty Kingdee one."""
    with Sandbox("jiandaoyun", customers=customers, enforce_limits=limits) as jdy, \
            Sandbox("kingdee", enforce_limits=limits) as kd:
        jdy.url, kd.url  # noqa: B018 (both children start at once; wait for both here)
        yield jdy, kd


# --- the bench config: the demo's systems and customer pipeline, pointed at these sandboxes ----------


def write_config(folder: Path, jdy: Sandbox, kd: Sandbox, *, quotas: bool) -> Path:
    """config/demo.yaml with only the customer pipeline, a fresh SQLite store in `folder`, and the
    sandboxes' URLs. With `quotas` the demo's rate limits stay; without, they are lifted, the
    connectors' per-endpoint limits included (the per-system `max_concurrency` stays: it is the
    engine's to use)."""
    cfg: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    cfg["env_files"] = [str(DEMO_ENV)]
    cfg["store"] = {"url": f"sqlite:///{folder}/bench.db"}
    cfg.pop("serve", None)
    systems = {"crm": cfg["systems"]["crm"], "erp": cfg["systems"]["erp"]}
    systems["crm"]["settings"]["base_url"] = jdy.url
    systems["erp"]["settings"]["server_url"] = f"{kd.url}/k3cloud/"
    if not quotas:
        for system in systems.values():
            limit = dict(system.get("rate_limit") or {})
            limit["per_second"] = 100_000
            limit["endpoints"] = dict.fromkeys(connector_class(system["connector"]).endpoint_rates, 100_000)
            system["rate_limit"] = limit
    cfg["systems"] = systems
    pipeline = cfg["pipelines"][PIPELINE]
    pipeline["mapping"] = str((DEMO_CONFIG.parent / pipeline["mapping"]).resolve())
    pipeline.pop("schedule", None)
    cfg["pipelines"] = {PIPELINE: pipeline}
    for key in ("reconcile", "alerts", "webhooks"):
        cfg.pop(key, None)
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def quota_records_per_s(config: Path) -> float:
    """What the configured quotas allow: reads/s × page size against writes/s × batch size."""
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    pipeline = cfg["pipelines"][PIPELINE]
    reads = cfg["systems"]["crm"]["rate_limit"]["per_second"] * min(100, int(pipeline.get("page_size", 100)))
    # Kingdee: per 100 records (a BatchSave's chunk) one key lookup and one BatchSave: two requests.
    writes = cfg["systems"]["erp"]["rate_limit"]["per_second"] * 100 / 2
    return float(min(reads, writes))


# --- erphub as a child process -------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float  # wall time of the whole `erphub run` process
    run_seconds: float  # the pipeline's own time, as erphub reports it (no interpreter start-up)
    max_rss_mib: float
    result: dict[str, Any]


def erphub_run(config: Path, *, engine: str = "plain", full: bool = False) -> Run:
    """`erphub run PIPELINE --json` in a child; wait4 gives that child's own peak RSS."""
    args = [*ERPHUB, "run", PIPELINE, "--config", str(config), "--engine", engine, "--json", "--log-level", "WARNING"]
    if full:
        args.append("--full")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=config.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, problems = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"erphub run failed ({proc.returncode}):\n{text[-2000:]}\n{problems[-3000:]}")
    result = _pipeline_result(text)
    run_seconds = float(result.get("seconds") or result.get("duration_s") or seconds)
    return Run(seconds, run_seconds, usage.ru_maxrss / 1024, result)


def _pipeline_result(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if isinstance(data, dict) and "results" in data:
        data = data["results"]
    if isinstance(data, list):
        data = next((r for r in data if r.get("pipeline") == PIPELINE), data[0])
    if not isinstance(data, dict):
        raise RuntimeError(f"unexpected `erphub run --json` output: {text[:500]}")
    return data


def moved(result: dict[str, Any]) -> int:
    counts = result.get("counts") or result
    return int(counts.get("created", 0)) + int(counts.get("updated", 0))
