"""Deletions are declared: a record deleted in the source does to its target record what the pipeline's
`on_delete` says (`ignore`, `deactivate` or `delete`).

Deletions arrive from webhooks (a Jiandaoyun `data_remove` push) and from reconcile's `extra` (linked in
the target, gone from the source). The target record is found through the link; once the target applied
the deletion the link is removed (the pair no longer exists), so reconcile stops reporting it. A target
that refuses keeps the link and leaves a dead letter with its reason.

Deletions hold the pipeline's lease, as runs do: a deletion never races a run of the same pipeline that
would write the record it deletes (and relink it, or reactivate it), and waits for such a run to end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from erphub.connectors.base import SupportsDelete
from erphub.core.errors import ConfigError
from erphub.core.outcomes import ErrorClass, Stage
from erphub.core.records import WriteResult
from erphub.engine.lease import holding
from erphub.engine.pipeline import Pipeline
from erphub.store import BatchCommit, NewDeadLetter, Store

log = structlog.get_logger("erphub.engine")


def check_on_delete(pipeline: Pipeline) -> str | None:
    """Why the pipeline's target cannot apply its `on_delete`, or None when it can."""
    if pipeline.on_delete == "ignore":
        return None
    target = pipeline.target
    if not isinstance(target, SupportsDelete):
        return f"on_delete {pipeline.on_delete!r}: {pipeline.target_system!r} cannot delete or deactivate records"
    modes = target.delete_modes(pipeline.target_entity)
    if pipeline.on_delete not in modes:
        can = " or ".join(sorted(modes)) or "neither"
        return (f"on_delete {pipeline.on_delete!r}: {pipeline.target_system!r} {pipeline.target_entity} "
                f"can take {can}")
    return None


def apply_deletions(pipeline: Pipeline, store: Store, source_ids: Sequence[str], *, run_id: str = "deletion") -> int:
    """Apply the pipeline's `on_delete` to the target records of these deleted source records; how many."""
    if pipeline.on_delete == "ignore" or not source_ids:
        return 0
    problem = check_on_delete(pipeline)
    if problem is not None:
        raise ConfigError(problem)
    # PipelineBusy after the pipeline's lease wait: the caller retries the deletion later.
    with holding(store, pipeline.lease()) as keep:
        return _delete_linked(pipeline, store, source_ids, run_id, keep)


def _delete_linked(pipeline: Pipeline, store: Store, source_ids: Sequence[str], run_id: str,
                   keep: Callable[[], None]) -> int:
    target = pipeline.target
    assert isinstance(target, SupportsDelete)
    links = store.links_for(pipeline.name, source_ids)
    pairs = [(source_id, link.target_id) for source_id, link in links.items() if link.target_id]
    if not pairs:
        return 0
    results: list[WriteResult] = []
    size = pipeline.batch_size
    for start in range(0, len(pairs), size):  # a batch at a time, the lease kept before each
        keep()
        results += target.delete(pipeline.target_entity, [target_id for _, target_id in pairs[start:start + size]],
                                 mode=pipeline.on_delete)
    done: list[str] = []
    batch = BatchCommit(pipeline.name, run_id)
    for (source_id, _), result in zip(pairs, results, strict=True):
        if result.error is None:
            done.append(source_id)
            continue
        batch.dead_letters.append(NewDeadLetter(
            source_id=source_id, source_payload={}, mapped_payload=None, stage=Stage.WRITE,
            error_class=ErrorClass.TARGET_TRANSIENT if result.error.transient else ErrorClass.TARGET_REJECTED,
            error_code=result.error.code, message=pipeline.redact(f"{pipeline.on_delete}: {result.error.message}"),
            field=result.error.field))
    if batch.dead_letters:
        store.commit_batch(batch, pipeline.endpoints)
    store.remove_links(pipeline.name, done)
    log.info("deletions applied", pipeline=pipeline.name, mode=pipeline.on_delete, applied=len(done),
             refused=len(batch.dead_letters))
    return len(done)
