"""The pipeline lease of one run: one run of a pipeline at a time (schedule, manual run, webhooks alike).

Taken before the run starts (waiting up to `lease_wait_s` for another holder), renewed once per batch
just before the batch's write (after its commit when it writes nothing; a two-way batch that also writes
values back to the source renews before each of its two writes), released when the run finishes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

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

    def keep(self) -> None:
        """Renew the lease; stop at once if it was lost (a batch outlived the TTL and another run began)."""
        if not self.store.renew_lease(self.pipeline, self.owner, self.ttl_s):
            raise PipelineBusy(f"pipeline {self.pipeline}: this run lost its lease to another run")

    def release(self) -> None:
        self.store.release_lease(self.pipeline, self.owner)
