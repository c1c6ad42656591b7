"""`--full` judges by the target: records our links call unchanged are compared with what the target
holds now, and those that differ (or are gone) are written again.

Links are our memory, not the truth: someone may have changed the record in the target since. A target
that compares for itself (`SupportsCompare`, Tryton's sales) says which differ; any other target that
can fetch its records by id (`SupportsFetch`: Jiandaoyun, Kingdee, Salesforce, Yonyou, SQL, ...) is
fetched once per batch and compared field by field as `erphub reconcile` compares (`reconcile_compare`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from erphub.connectors.base import SupportsCompare, SupportsFetch
from erphub.core.records import WriteRequest
from erphub.engine.items import Classified
from erphub.engine.pipeline import Pipeline
from erphub.reconcile_compare import fetched_differing


def _compares_itself(pipeline: Pipeline) -> bool:
    target = pipeline.target
    return isinstance(target, SupportsCompare) and target.compares(pipeline.target_entity)


def judges_by_target(pipeline: Pipeline, full: bool) -> bool:
    """Whether this run compares with the target instead of trusting the links' hashes."""
    return full and (_compares_itself(pipeline) or isinstance(pipeline.target, SupportsFetch))


def differing_in_target(pipeline: Pipeline, items: Sequence[Classified],
                        owned_part: Callable[[dict[str, Any]], dict[str, Any]]) -> set[str]:
    """Source ids of the items whose target record differs from what the pipeline would write."""
    target = pipeline.target
    if not _compares_itself(pipeline):
        assert isinstance(target, SupportsFetch)
        return fetched_differing(pipeline, target, [
            (item.record.id, item.link.target_id if item.link else None, item.mapped.data) for item in items])
    assert isinstance(target, SupportsCompare)
    requests = [WriteRequest(source_id=item.record.id, key=item.mapped.key,
                             target_id=item.link.target_id if item.link else None,
                             data=owned_part(item.mapped.data), idempotency_key="",
                             owned_fields=pipeline.plan.owned_fields) for item in items]
    return target.differing(pipeline.target_entity, requests)
