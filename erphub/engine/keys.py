"""Keys are identities: two different source records that map to one target key are never merged.

Before a batch is written, a record is a `key_conflict` when its match key is, as the target compares
keys (`Connector.key_identity`: Kingdee ignores case, say), the key of another record of the same
batch, or finds in the target a record this pipeline already links to another source record. The
first holder of a key keeps it (the one already linked, else the first in the batch); the others are
dead letters naming both source ids, for a person to fix one of the codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from erphub.engine.items import Classified
from erphub.engine.pipeline import Pipeline
from erphub.store import Store


@dataclass(frozen=True)
class KeyConflict:
    item: Classified
    key: str
    other_source_id: str
    target_id: str | None

    def message(self) -> str:
        where = f" (target record {self.target_id})" if self.target_id else ""
        return (f"source records {self.item.record.id} and {self.other_source_id} both map to key "
                f"{self.key!r}{where}; different source records are never merged: correct one of the codes")


def find_key_conflicts(pipeline: Pipeline, store: Store, items: Sequence[Classified],
                       found: Mapping[str, str]) -> list[KeyConflict]:
    """The items of a batch that would overwrite another source record's target record.

    `found` are target ids by key of the batch's unlinked records (the engine's lookup).
    """
    target, entity = pipeline.target, pipeline.target_entity

    def identity(key: str) -> str:
        return target.key_identity(entity, key)

    conflicts: list[KeyConflict] = []
    holders: dict[str, Classified] = {}
    # Linked records first: a record that already holds its key in the target keeps it.
    for item in sorted(items, key=lambda i: 0 if i.link is not None and i.link.target_id else 1):
        key = item.mapped.key
        if key is None:
            continue
        holder = holders.setdefault(identity(key), item)
        if holder is not item and holder.record.id != item.record.id:
            conflicts.append(KeyConflict(item, key, holder.record.id,
                                         holder.link.target_id if holder.link else None))
    conflicted = {c.item.record.id for c in conflicts}

    # A record new to this pipeline whose key finds a target record linked to another source record,
    # or a linked record whose key now finds a different target record than its own.
    lookups = {item.record.id: found.get(item.mapped.key) for item in items
               if item.record.id not in conflicted and item.mapped.key is not None
               and (item.link is None or not item.link.target_id)}
    changed = [item for item in items
               if item.record.id not in conflicted and item.mapped.key is not None and item.link is not None
               and item.link.target_id and item.link.match_key is not None
               and identity(item.link.match_key) != identity(item.mapped.key)]
    if changed:
        now = target.lookup(entity, [str(item.mapped.key) for item in changed])
        for item in changed:
            other = now.get(str(item.mapped.key))
            if other is not None and other != item.link.target_id:  # type: ignore[union-attr]
                lookups[item.record.id] = other
    targets = sorted({t for t in lookups.values() if t})
    if not targets:
        return conflicts
    linked = store.reverse_link_targets(pipeline.name, targets)  # this pipeline's links, by target id
    for item in items:
        target_id = lookups.get(item.record.id)
        link = linked.get(target_id) if target_id else None
        if link is not None and link.source_id != item.record.id:
            conflicts.append(KeyConflict(item, str(item.mapped.key), link.source_id, target_id))
    return conflicts
