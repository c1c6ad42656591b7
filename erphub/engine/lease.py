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
from contextlib import ExitStack, contextmanager
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
        self.owner = owner_name(uuid.uuid4().hex[:8])
        deadline = time.monotonic() + self.wait_s
        announced = False
        while True:
            sent = _elapsed_clocks()
            if (holder := self.store.acquire_lease(self.pipeline, self.owner, self.ttl_s)) is None:
                self._renewed_at = sent
                return
            if time.monotonic() >= deadline:
                raise PipelineBusy(f"pipeline {self.pipeline} is busy: another run ({holder}) holds it")
            if not announced:
                log.info("waiting for another run of the pipeline to finish", pipeline=self.pipeline, holder=holder)
                announced = True
            time.sleep(_POLL_S)

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
    deadline = time.monotonic() + max((wait_s for _, _, wait_s in wanted), default=0.0)
    announced = False
    while True:
        with ExitStack() as stack:
            held: list[Lease] = []
            try:
                for pipeline, ttl_s, _ in wanted:
                    lease = Lease(store, pipeline, ttl_s=ttl_s, wait_s=0)
                    lease.take()
                    stack.callback(lease.release)
                    held.append(lease)
            except PipelineBusy as busy:
                if time.monotonic() >= deadline:
                    raise
                if not announced:
                    log.info("waiting for a run to finish", pipelines=[name for name, _, _ in wanted], busy=str(busy))
                    announced = True
            else:
                yield functools.partial(_keep_all, held)
                return
        time.sleep(_POLL_S)  # the ones taken were let go on leaving the ExitStack


def _keep_all(leases: list[Lease]) -> None:
    for lease in leases:
        lease.keep()
