"""`--full` judges by the target: records our links call unchanged are compared with what the target
holds now, where the target can tell (`SupportsCompare`), and those that differ are written again.

Links are our memory, not the truth: someone may have changed the record in the target since.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from erphub.connectors.base import SupportsCompare
from erphub.core.records import WriteRequest
from erphub.engine.items import Classified
from erphub.engine.pipeline import Pipeline


def judges_by_target(pipeline: Pipeline, full: bool) -> bool:
    """Whether this run compares with the target instead of trusting the links' hashes."""
    target = pipeline.target
    return full and isinstance(target, SupportsCompare) and target.compares(pipeline.target_entity)


def differing_in_target(pipeline: Pipeline, items: Sequence[Classified],
                        owned_part: Callable[[dict[str, Any]], dict[str, Any]]) -> set[str]:
    """Source ids of the items whose target record differs from what the pipeline would write."""
    target = pipeline.target
    assert isinstance(target, SupportsCompare)
    requests = [WriteRequest(source_id=item.record.id, key=item.mapped.key,
                             target_id=item.link.target_id if item.link else None,
                             data=owned_part(item.mapped.data), idempotency_key="",
                             owned_fields=pipeline.plan.owned_fields) for item in items]
    return target.differing(pipeline.target_entity, requests)
