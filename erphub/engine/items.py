"""A record in flight through one batch, once mapped and matched against its link."""

from __future__ import annotations

from dataclasses import dataclass

from erphub.core.records import Record
from erphub.mappings.plan import Mapped
from erphub.store import Link


@dataclass
class Classified:
    """A mapped record that needs a write: its mapping, the payload digest, and its link if any."""

    record: Record
    mapped: Mapped
    digest: str
    link: Link | None
