"""The pipeline lease of one run: one run of a pipeline at a time (schedule, manual run, webhooks alike).

Taken before the run starts (waiting up to `lease_wait_s` for another holder), kept just before each
write, to the target or back to the source (a two-way or write-back batch: before each of its writes),
and after each batch's commit, released when the run finishes. Writes outside a run (a deletion, a
conflict resolved by hand) hold the lease too, for their whole length (`holding`).

Keeping it renews it in the store only once a tenth of its TTL has passed since the last renewal,
as told by two clocks read before that renewal was sent: one that counts a suspended machine's sleep,
and the wall clock the expiry is written in (due when either says so, or runs backwards). Until then
the lease cannot have expired, so no other run can hold it, and a batch writes knowing the pipeline is
its own. A batch that took longer renews, or stops at once if another run took the pipeline
meanwhile. The price: a write has nine tenths of the TTL (270 s at the default 300 s), not all of it,
before its lease could expire.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog

from erphub.core.errors import PipelineBusy
from erphub.store import Store
from erphub.store.leases import owner_name

log = structlog.get_logger("erphub.engine")

_POLL_S = 0.25
RENEW_AFTER = 0.1  # of the TTL: at 300 s, once per 30 s rather than once per batch


def _elapsed_clocks() -> tuple[float, float]:
    """(time since boot, sleep included; wall time). CLOCK_MONOTONIC stops while a machine is
    suspended, so a lease could expire unseen by it; CLOCK_BOOTTIME does not (Linux)."""
    boot = time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()
    return boot, time.time()


@dataclass
class Lease:
    store: Store
    pipeline: str
    ttl_s: float
    wait_s: float
    owner: str = ""  # named afresh by each `take`
    # (boot clock, wall clock) when the last acquire or renewal was sent
    _renewed_at: tuple[float, float] = field(default=(float("-inf"), float("-inf")), init=False, repr=False)

    def take(self) -> None:
        """Wait for the pipeline to be free and hold it; PipelineBusy after `wait_s`."""
        self.owner = _new_owner()
        _wait_for(self._attempt, self.wait_s)

    def _attempt(self) -> tuple[str, str] | None:
        """Hold the pipeline if it is free now: None; else (this pipeline, who holds it)."""
        sent = _elapsed_clocks()
        if (holder := self.store.acquire_lease(self.pipeline, self.owner, self.ttl_s)) is not None:
            return self.pipeline, holder
        self._renewed_at = sent
        return None

    def keep(self) -> None:
        """Hold the lease for the next write: renewed when due; stop at once if it was lost (a batch
        outlived the TTL and another run began)."""
        sent = _elapsed_clocks()
        due = self.ttl_s * RENEW_AFTER
        if all(0 <= now - then < due for now, then in zip(sent, self._renewed_at, strict=True)):
            return
        if not self.store.renew_lease(self.pipeline, self.owner, self.ttl_s):
            raise PipelineBusy(f"pipeline {self.pipeline}: this run lost its lease to another run")
        self._renewed_at = sent

    def release(self) -> None:
        self.store.release_lease(self.pipeline, self.owner)


@contextmanager
def holding(store: Store, *leases: tuple[str, float, float]) -> Iterator[Callable[[], None]]:
    """Hold the leases of these pipelines (name, TTL, wait) for a piece of work outside a run (a
    deletion, a conflict resolved by hand); yields `keep`, to call before each of its writes.

    All or none: while one is busy none is held (a pipeline is never kept waiting on another one's
    run), retried until the longest wait is over, then PipelineBusy. All released on exit."""
    wanted = sorted(set(leases))
    held = [Lease(store, pipeline, ttl_s=ttl_s, wait_s=wait_s) for pipeline, ttl_s, wait_s in wanted]
    for lease in held:
        lease.owner = _new_owner()

    def attempt() -> tuple[str, str] | None:
        for taken, lease in enumerate(held):
            if (busy := lease._attempt()) is not None:
                for earlier in held[:taken]:
                    earlier.release()
                return busy
        return None

    _wait_for(attempt, max((wait_s for _, _, wait_s in wanted), default=0.0))
    try:
        yield functools.partial(_keep_all, held)
    finally:
        for lease in held:
            lease.release()


def _new_owner() -> str:
    return owner_name(uuid.uuid4().hex[:8])


def _wait_for(attempt: Callable[[], tuple[str, str] | None], wait_s: float) -> None:
    """Call `attempt` until it holds what it asks for (None) or `wait_s` has passed, then PipelineBusy
    naming the pipeline it last found busy, and its holder."""
    deadline = time.monotonic() + wait_s
    announced = False
    while (busy := attempt()) is not None:
        pipeline, holder = busy
        if time.monotonic() >= deadline:
            raise PipelineBusy(f"pipeline {pipeline} is busy: another run ({holder}) holds it")
        if not announced:
            log.info("waiting for another run of the pipeline to finish", pipeline=pipeline, holder=holder)
            announced = True
        time.sleep(_POLL_S)


def _keep_all(leases: list[Lease]) -> None:
    for lease in leases:
        lease.keep()
