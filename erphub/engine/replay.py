"""Replay dead letters with the fix: re-read each letter's source record by id, deliver what the source
holds now, and close letters whose source record is gone.

    open letters ─► source.fetch(ids) ─► records as they are now (their own change times)
                                      └► ids the source no longer has ─► closed as `source_deleted`
        ─► deliver_records(trigger="replay") ─► letters still open afterwards are `failed`

`kept=True` replays the payloads kept at failure time instead (the source cannot be asked, or a person
wants exactly what failed). A kept payload carries its source change time when the letter recorded one;
otherwise it is replayed as of the epoch, so it never looks newer than a version already delivered.
A source that cannot fetch (no SupportsFetch, or an entity computed from several records) is replayed
from the kept payloads, and the outcome says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from erphub.connectors.base import SupportsFetch
from erphub.core.errors import CannotFetch
from erphub.core.records import Record
from erphub.engine.drive import UNKNOWN_CHANGE_TIME, deliver_records
from erphub.engine.pipeline import Pipeline
from erphub.store import DeadLetter, RunInfo, Store


@dataclass
class ReplayOutcome:
    pipeline: str
    letters: int
    source: str  # "fetched" (re-read from the source) or "kept" (the payloads kept at failure time)
    run: RunInfo | None = None
    source_deleted: list[str] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # letters still open after the replay

    def as_dict(self) -> dict[str, Any]:
        run = self.run.as_dict() if self.run is not None else {"pipeline": self.pipeline, "status": "success",
                                                                "counts": {}}
        return {**run, "letters": self.letters, "source": self.source,
                "source_deleted": len(self.source_deleted), "failed": len(self.failed)}


def kept_record(letter: DeadLetter) -> Record:
    return Record(letter.source_id, letter.source_updated_at or UNKNOWN_CHANGE_TIME, letter.source_payload)


def _fetch(pipeline: Pipeline, ids: Sequence[str]) -> dict[str, Record] | None:
    source = pipeline.source
    if not isinstance(source, SupportsFetch):
        return None
    try:
        return source.fetch(pipeline.source_entity, ids)
    except CannotFetch:
        return None


def replay(pipeline: Pipeline, store: Store, ids: Sequence[int] | None = None, *, kept: bool = False) -> ReplayOutcome:
    """Replay a pipeline's open dead letters (all, or these ids); see the module docstring."""
    letters = store.list_dead_letters(pipeline=pipeline.name, status="open", limit=100_000, ids=ids)
    source_ids = list(dict.fromkeys(letter.source_id for letter in letters))
    current = None if kept else _fetch(pipeline, source_ids)
    outcome = ReplayOutcome(pipeline.name, len(letters), "kept" if current is None else "fetched")
    if current is None:
        records = [kept_record(letter) for letter in letters]  # each with its own change time
    else:
        outcome.source_deleted = [source_id for source_id in source_ids if source_id not in current]
        if outcome.source_deleted:
            store.close_dead_letters(pipeline.name, outcome.source_deleted, "source_deleted")
        records = [current[source_id] for source_id in source_ids if source_id in current]
    if records:
        outcome.run = deliver_records(pipeline, store, records, trigger="replay")
    chosen = {letter.id for letter in letters}
    outcome.failed = sorted(letter.id for letter in store.list_dead_letters(
        pipeline=pipeline.name, status="open", limit=100_000, ids=sorted(chosen)))
    return outcome
