"""SIGKILL an `erphub run` at the worst moment and at random moments: the next run leaves no duplicate.

The sandboxes run in this process; the hub runs as a real subprocess. A small ASGI wrapper lets
the target apply a write and then kills the hub before the answer leaves, which is exactly "the
target accepted the write, the store never committed".
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from erphub import sandbox as sandboxes
from erphub.sandbox.serve import SandboxServer

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class KillSwitch:
    """Kills the hub process right after the target applied the n-th matching write."""

    marker: str
    after_writes: int = 0  # 0 = disarmed
    pid: int | None = None
    writes_seen: int = 0
    kills: int = 0
    paths: list[str] = field(default_factory=list)

    def wrap(self, app: Any) -> Any:
        async def wrapped(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or self.marker not in scope.get("path", ""):
                await app(scope, receive, send)
                return
            held: list[dict] = []

            async def hold(message: dict) -> None:
                held.append(message)

            await app(scope, receive, hold)          # the write is applied here
            self.writes_seen += 1
            if self.after_writes and self.writes_seen >= self.after_writes and self.pid:
                os.kill(self.pid, signal.SIGKILL)     # before the answer leaves
                self.kills += 1
                self.after_writes = 0
                await asyncio.sleep(0.2)
            for message in held:
                try:
                    await send(message)
                except Exception:  # the client is gone; that is the point
                    return

        return wrapped


@dataclass
class Rig:
    tmp: Path
    crm: Any
    erp: Any
    environ: dict[str, str]

    def config(self, *, batch_size: int) -> Path:
        text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
        text = text.replace("../mappings/", f"{ROOT}/mappings/").replace("[demo.env]", f"[{ROOT}/config/demo.env]")
        text = text.replace("sqlite:///../.erphub/demo/demo.db", f"sqlite:///{self.tmp}/state.db")
        cfg = yaml.safe_load(text)
        for pipeline in cfg["pipelines"].values():  # small batches: a kill lands between two of them
            pipeline["batch_size"] = batch_size
        path = self.tmp / f"hub-{batch_size}.yaml"
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    def start(self, config: Path, *pipelines: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "erphub.cli", "run", *pipelines, "--engine", "plain",
                                 "--json", "--config", str(config)], env=self.environ, cwd=self.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, config: Path, *pipelines: str) -> list[dict]:
        process = self.start(config, *pipelines)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        return json.loads(out)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Rig, KillSwitch, KillSwitch]]:
    crm, erp = sandboxes.create("jiandaoyun"), sandboxes.create("kingdee", seed_customers=1, seed_receipts=6)
    kill_erp_writes = KillSwitch(marker="Save")            # BatchSave / Save on Kingdee
    kill_crm_writes = KillSwitch(marker="data/batch_create")
    with SandboxServer(kill_crm_writes.wrap(crm.app)) as crm_server, \
            SandboxServer(kill_erp_writes.wrap(erp.app)) as erp_server:
        environ = {**os.environ, "ERPHUB_DEMO_JDY_URL": crm_server.base_url,
                   "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        yield Rig(tmp_path, crm, erp, environ), kill_erp_writes, kill_crm_writes


def kill_at_first_write(rig: Rig, switch: KillSwitch, config: Path, *pipelines: str) -> None:
    switch.after_writes = 1
    process = rig.start(config, *pipelines)
    switch.pid = process.pid
    process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, "the hub was meant to die mid-write"
    assert switch.kills == 1


def test_killed_after_the_target_accepted_a_create_the_next_run_recovers_without_duplicates(rig) -> None:
    rig_, _, kill_crm = rig
    # Receipts flow Kingdee -> Jiandaoyun, whose API writes skip duplicate checks: only the hub can prevent them.
    kill_at_first_write(rig_, kill_crm, rig_.config(batch_size=2), "erp_receipts_to_crm")
    landed = rig_.crm.state.all("payment_form")
    assert landed, "the killed batch must have reached the CRM"
    # A different batch size makes a different batch (and transaction id): recovery must come from the
    # hub's own key lookup in the CRM before each create.
    result = rig_.run(rig_.config(batch_size=5), "erp_receipts_to_crm")[0]
    assert result["status"] == "success"
    numbers = [row["receipt_no"] for row in rig_.crm.state.all("payment_form")]
    assert len(numbers) == len(set(numbers)), f"duplicate payments: {sorted(numbers)}"
    assert len(numbers) == 6
    assert result["counts"]["updated"] >= len(landed)  # the landed ones were found by key, not re-created


def test_killed_at_random_moments_nothing_is_duplicated_or_lost(rig) -> None:
    rig_, kill_erp, _ = rig
    config = rig_.config(batch_size=7)
    store = rig_.erp.state.store
    preexisting = {d["FNumber"] for d in store.docs["BD_Customer"].values()}  # audited already: the ERP refuses
    pipelines = ("crm_customers_to_erp", "crm_orders_to_erp")
    rng = random.Random(20261127)
    for _ in range(4):
        process = rig_.start(config, *pipelines)
        kill_erp.pid = process.pid
        time.sleep(rng.uniform(0.3, 2.5))             # somewhere in start-up, reading, writing or committing
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.communicate(timeout=300)
    kill_erp.after_writes = kill_erp.writes_seen + 2  # and once exactly between an accepted write and the commit
    process = rig_.start(config, *pipelines)
    kill_erp.pid = process.pid
    process.communicate(timeout=300)

    results = {r["pipeline"]: r for r in rig_.run(config, *pipelines)}
    assert all(r["status"] == "success" for r in results.values())
    customers = [d["FNumber"] for d in store.docs["BD_Customer"].values()]
    orders = [d["FBillNo"] for d in store.docs["SAL_SaleOrder"].values()]
    assert len(customers) == len(set(customers)) and len(orders) == len(set(orders))
    # Nothing lost: every formal CRM customer is in the ERP or in the dead-letter store with its reason.
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "erphub.cli", "status", "--json", "--config", str(config)], env=rig_.environ,
        cwd=rig_.tmp, capture_output=True, text=True, check=True).stdout)
    open_letters = {p["pipeline"]: p["open_dead_letters"] for p in status["pipelines"]}
    formal = [r for r in rig_.crm.state.all("customer_form") if r.get("status") == "正式"]
    crm_codes = {r["customer_code"] for r in formal}
    delivered = (crm_codes & set(customers)) - preexisting
    assert len(delivered) + open_letters["crm_customers_to_erp"] == len(crm_codes)
    crm_orders = {r["order_no"] for r in rig_.crm.state.all("sales_order_form")}
    assert len(crm_orders & set(orders)) + open_letters["crm_orders_to_erp"] == len(crm_orders)
