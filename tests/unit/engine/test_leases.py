"""One run of a pipeline at a time, across processes: leases in the store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from erphub.core.errors import RunFailed
from erphub.store import Store
from erphub.store.leases import HOST, owner_name
from tests.unit.engine.configs import memory_pipeline_config
from tests.unit.engine.test_engine import make_pipeline, seed_customers


def test_a_second_run_waits_and_then_fails_while_the_first_holds_the_pipeline(store: Store, systems, request):
    crm, _ = systems
    seed_customers(crm, 3)
    pipeline = make_pipeline(systems, request)
    pipeline.lease_wait_s = 0.5
    other = owner_name("someone-else") + "-x"
    assert store.acquire_lease("customers", other, ttl_s=60) is None
    assert store.acquire_lease("customers", "host:1:other", ttl_s=60) == other
    from erphub.engine import run_pipeline

    with pytest.raises(RunFailed, match="busy"):
        run_pipeline(pipeline, store)
    store.release_lease("customers", other)
    assert run_pipeline(pipeline, store).counts["created"] == 3
    assert store.acquire_lease("customers", "next", ttl_s=60) is None  # released at the end of the run


def test_an_expired_lease_or_one_left_by_a_dead_process_is_taken_over(store: Store) -> None:
    assert store.acquire_lease("p1", "elsewhere:1:a", ttl_s=0.05) is None
    time.sleep(0.1)
    assert store.acquire_lease("p1", "me", ttl_s=60) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert store.acquire_lease("p2", f"{HOST}:{dead}:run", ttl_s=600) is None
    assert store.acquire_lease("p2", "me", ttl_s=60) is None  # its holder process is gone


def test_a_dead_pid_in_another_pid_namespace_of_the_same_host_name_waits_for_the_ttl(store: Store) -> None:
    """Containers sharing a host name but not their pids: a pid gone here may be alive there."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    name = socket.gethostname()
    for owner in (f"{name}/1:{dead}:0:run", f"{name}:{dead}:0:run"):  # another namespace; no namespace
        pipeline = f"ns-{owner.count('/')}"
        assert store.acquire_lease(pipeline, owner, ttl_s=600) is None
        assert store.acquire_lease(pipeline, "me", ttl_s=60) == owner


def test_the_cli_reports_a_busy_pipeline_as_a_failed_run_not_a_crash(tmp_path) -> None:
    import json
    import os

    config = memory_pipeline_config(tmp_path, "customers", "source: customer\ntarget: customer\nkey: number\n"
                                    "fields:\n  number: {from: code}\n", source=("crm-busy", "customer", "code"),
                                    target=("erp-busy", "customer", "number"), options="busy_wait_s: 0.3")
    store = Store(f"sqlite:///{tmp_path}/state.db")
    assert store.acquire_lease("customers", "elsewhere:1:held", ttl_s=600) is None
    store.close()
    result = subprocess.run([sys.executable, "-m", "erphub.cli", "run", "customers", "--engine", "plain", "--json",
                             "--config", str(config)], capture_output=True, text=True,
                            env=dict(os.environ), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    [report] = json.loads(result.stdout)
    assert report["status"] == "failed" and "busy" in report["error"]
    assert "Traceback" not in result.stderr


def test_a_lease_held_by_a_zombie_is_taken_over_at_once(store: Store) -> None:
    """A killed run its parent has not reaped yet: kill(pid, 0) succeeds, /proc says state Z."""
    from erphub.store.leases import process_stat

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        while (stat := process_stat(child.pid)) is not None and stat[0] != "Z":
            time.sleep(0.01)  # exited, never waited for: a zombie
        assert stat is not None and stat[0] == "Z"
        assert store.acquire_lease("p", f"{HOST}:{child.pid}:{stat[1]}:run", ttl_s=600) is None
        assert store.acquire_lease("p", "me", ttl_s=60) is None  # no 300 s wait for the TTL
    finally:
        child.wait()


def test_a_lease_whose_pid_now_names_another_process_is_taken_over(store: Store) -> None:
    """pid reuse: the lease kept its holder's start time; a live process under that pid that started
    at another time is not the holder."""
    from erphub.store.leases import process_stat

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stat = process_stat(child.pid)
        assert stat is not None
        host = HOST
        assert store.acquire_lease("alive", f"{host}:{child.pid}:{stat[1]}:run", ttl_s=600) is None
        assert store.acquire_lease("alive", "me", ttl_s=60) == f"{host}:{child.pid}:{stat[1]}:run"  # still its
        reused = f"{host}:{child.pid}:{int(stat[1]) + 1}:run"
        assert store.acquire_lease("reused", reused, ttl_s=600) is None
        assert store.acquire_lease("reused", "me", ttl_s=60) is None
    finally:
        child.kill()
        child.wait()


class CountingStore:
    """A store's lease calls, counted; `lost` makes the next renewal find another holder."""

    def __init__(self, store: Store) -> None:
        self.store, self.renewals, self.lost = store, 0, False

    def acquire_lease(self, pipeline: str, owner: str, ttl_s: float) -> str | None:
        return self.store.acquire_lease(pipeline, owner, ttl_s)

    def renew_lease(self, pipeline: str, owner: str, ttl_s: float) -> bool:
        self.renewals += 1
        return not self.lost and self.store.renew_lease(pipeline, owner, ttl_s)


def test_the_lease_is_renewed_once_a_tenth_of_its_ttl_passed_and_a_lost_one_stops_the_run(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from erphub.core.errors import PipelineBusy
    from erphub.engine import lease as lease_module
    from erphub.engine.lease import Lease

    boot, wall = [1000.0], [5000.0]
    monkeypatch.setattr(lease_module, "_elapsed_clocks", lambda: (boot[0], wall[0]))

    def step(seconds: float, *, wall_too: bool = True) -> None:
        boot[0] += seconds
        wall[0] += seconds if wall_too else 0

    counting = CountingStore(store)
    lease = Lease(counting, "p-renew", ttl_s=60, wait_s=0)  # type: ignore[arg-type]
    lease.take()
    for _ in range(50):  # fifty batches within 5 s of taking it: it cannot have expired
        lease.keep()
        step(0.1)
    assert counting.renewals == 0
    step(1.0)  # 6 s since it was taken: due
    lease.keep()
    assert counting.renewals == 1
    lease.keep()
    assert counting.renewals == 1
    step(7.0, wall_too=False)  # the machine slept: the boot clock counts it, the monotonic one would not
    lease.keep()
    assert counting.renewals == 2
    wall[0] += 30  # the wall clock (the expiry's clock) jumped ahead
    lease.keep()
    assert counting.renewals == 3
    wall[0] -= 3600  # ... or back: not trusted either
    lease.keep()
    assert counting.renewals == 4
    step(6.0)
    counting.lost = True  # meanwhile another run took the pipeline (say, after a long pause)
    with pytest.raises(PipelineBusy, match="lost its lease"):
        lease.keep()


def test_a_deletion_waits_for_the_run_holding_the_pipeline_and_then_applies(store: Store, systems, request) -> None:
    """A webhook's or reconcile's deletion holds the lease as a run does: while another run holds the
    pipeline it deletes nothing (the caller retries it), once the pipeline is free it applies."""
    from erphub.core.errors import PipelineBusy
    from erphub.engine import apply_deletions, run_pipeline

    crm, erp = systems
    seed_customers(crm, 2)
    pipeline = make_pipeline(systems, request)
    pipeline.on_delete, pipeline.lease_wait_s = "delete", 0.3
    run_pipeline(pipeline, store)
    gone = crm.all("customer")[0].id
    other = owner_name("other-run")
    assert store.acquire_lease("customers", other, ttl_s=60) is None
    with pytest.raises(PipelineBusy, match="busy"):
        apply_deletions(pipeline, store, [gone])
    assert len(erp.all("customer")) == 2  # the ERP's own records: nothing deleted under another run
    store.release_lease("customers", other)
    assert apply_deletions(pipeline, store, [gone]) == 1
    assert len(erp.all("customer")) == 1
    assert store.acquire_lease("customers", "next", ttl_s=60) is None  # and the deletion let the pipeline go


def test_holding_takes_every_lease_or_none_and_lets_all_go(store: Store) -> None:
    """Work outside a run that needs two pipelines never sits on one while it waits for the other."""
    import threading

    from erphub.engine.lease import holding

    other = owner_name("a-run")
    assert store.acquire_lease("hold-b", other, ttl_s=60) is None
    got, done = threading.Event(), threading.Event()

    def work() -> None:
        with holding(store, ("hold-a", 60, 10), ("hold-b", 60, 10)):
            got.set()
            done.wait(10)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        time.sleep(0.6)  # a few attempts, each let go of hold-a on finding hold-b busy
        assert not got.is_set()
        mine = owner_name("mine")
        for _ in range(20):  # hold-a is free while hold-b is busy (between the worker's attempts)
            if store.acquire_lease("hold-a", mine, ttl_s=60) is None:
                break
            time.sleep(0.05)
        else:
            pytest.fail("hold-a stayed held while hold-b was busy")
        store.release_lease("hold-a", mine)
        store.release_lease("hold-b", other)
        assert got.wait(10)
        assert store.acquire_lease("hold-a", mine, ttl_s=60) is not None  # both held now
    finally:
        done.set()
        worker.join(10)
    assert store.acquire_lease("hold-a", mine, ttl_s=60) is None  # and both let go
    assert store.acquire_lease("hold-b", mine, ttl_s=60) is None
