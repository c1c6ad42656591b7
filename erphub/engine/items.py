"""A record in flight through one batch, once mapped and matched against its link."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from erphub.core.records import Record
from erphub.mappings.plan import Mapped
from erphub.store import BatchCommit, Link


@dataclass
class Classified:
    """A mapped record that needs a write: its mapping, the payload digest (and the canonical text
    it hashes), and its link if any."""

    record: Record
    mapped: Mapped
    digest: str
    link: Link | None
    canonical: str


@dataclass
class BatchWork:
    """One batch between its mapping and its commit: what goes into the store, and what the source learns."""

    commit: BatchCommit
    mapped: list[tuple[Record, Mapped]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # filtered out by the mapping (a handshake acknowledges them)
    touched: frozenset[str] = frozenset()  # its source ids and match keys: batches sharing one never overlap
    # What this batch added to the run's counts: a retry that does the batch again takes it back first.
    counts: Counter[str] = field(default_factory=Counter)
