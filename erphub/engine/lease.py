"""The pipeline lease of one run: one run of a pipeline at a time (schedule, manual run, webhooks alike).

Taken before the run starts (waiting up to `lease_wait_s` for another holder), kept once per batch
just before the batch's write (after its commit when it writes nothing; a two-way batch that also writes
values back to the source keeps it before each of its two writes), released when the run finishes.

Keeping renews in the store only when a tenth of the TTL has passed since the last renewal: the lease
is then still ours for nine tenths of the TTL (nobody takes a live holder's lease before it expires),
and a run of small batches does not pay a store transaction for each. A batch that outlived the TTL
is always checked, so a lease lost meanwhile still stops the run before its next write.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import structlog

from erphub.core.errors import PipelineBusy
from erphub.store import Store
from erphub.store.leases import owner_name

log = structlog.get_logger("erphub.engine")

_POLL_S = 0.25


@dataclass
class Lease:
    store: Store
    pipeline: str
    ttl_s: float
    wait_s: float
    owner: str = ""  # named afresh by each `take`
    _renewed_at: float = field(default=0.0, repr=False)  # monotonic time of the last take or renewal

    def take(self) -> None:
        """Wait for the pipeline to be free and hold it; PipelineBusy after `wait_s`."""
        self.owner = owner_name(uuid.uuid4().hex[:8])
        deadline = time.monotonic() + self.wait_s
        announced = False
        while (holder := self.store.acquire_lease(self.pipeline, self.owner, self.ttl_s)) is not None:
            if time.monotonic() >= deadline:
                raise PipelineBusy(f"pipeline {self.pipeline} is busy: another run ({holder}) holds it")
            if not announced:
                log.info("waiting for another run of the pipeline to finish", pipeline=self.pipeline, holder=holder)
                announced = True
            time.sleep(_POLL_S)
        self._renewed_at = time.monotonic()

    def keep(self) -> None:
        """Make sure the lease is ours before a write; stop at once if it was lost (a batch outlived
        the TTL and another run began)."""
        now = time.monotonic()
        if now - self._renewed_at < self.ttl_s / 10:
            return  # renewed moments ago: ours for at least 0.9 of the TTL still
        if not self.store.renew_lease(self.pipeline, self.owner, self.ttl_s):
            raise PipelineBusy(f"pipeline {self.pipeline}: this run lost its lease to another run")
        self._renewed_at = now

    def release(self) -> None:
        self.store.release_lease(self.pipeline, self.owner)
