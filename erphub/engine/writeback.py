"""Write-back: put the target's number for each delivered record into the source record, so both
systems show the link (a CRM customer carrying its ERP customer number, say)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from erphub.core.outcomes import ErrorClass, Stage
from erphub.core.records import Record, WriteRequest
from erphub.engine.pipeline import Pipeline
from erphub.mappings.plan import Mapped
from erphub.store import BatchCommit, NewDeadLetter, Store


def write_back(pipeline: Pipeline, store: Store, mapped: Sequence[tuple[Record, Mapped]],
               batch: BatchCommit, keep_lease: Callable[[], None]) -> int:
    """Write the numbers the source lacks; a refusal becomes a dead letter in `batch`.
    `keep_lease` is called just before the source is written (a batch may have written nothing to
    the target, so nothing else kept the lease for this write).

    Returns how many records were dead-lettered, for the run to count.
    """
    p = pipeline
    assert p.write_back is not None
    field_name, kind = p.write_back
    dead = {letter.source_id for letter in batch.dead_letters}
    known = {link.source_id: (link.target_id, link.match_key) for link in batch.links if link.target_id}
    earlier = [record.id for record, _ in mapped if record.id not in known and record.id not in dead]
    for source_id, link in store.links_for(p.name, earlier).items():  # unchanged: linked before
        if link.target_id:
            known[source_id] = (link.target_id, link.match_key)
    requests: list[WriteRequest] = []
    records: list[Record] = []
    for record, outcome in mapped:
        if record.id not in known:
            continue
        target_id, match_key = known[record.id]
        value = target_id if kind == "target_id" else (outcome.key or match_key)
        if value is None or str(record.data.get(field_name) or "") == str(value):
            continue  # already there: no write, and so no echo either
        records.append(record)
        requests.append(WriteRequest(source_id=record.id, key=None, target_id=record.id,
                                     data={field_name: value}, idempotency_key=f"{p.name}:wb:{record.id}",
                                     owned_fields=frozenset({field_name})))
    if not requests:
        return 0
    keep_lease()
    results = p.source.write(p.source_entity, requests)
    refused = 0
    for record, request, written in zip(records, requests, results, strict=True):
        if written.error is not None:
            batch.dead_letters.append(NewDeadLetter(
                source_id=record.id, source_payload=record.data, mapped_payload=request.data,
                stage=Stage.WRITE_BACK, error_class=ErrorClass.SOURCE_REJECTED, error_code=written.error.code,
                message=p.redact(written.error.message), field=field_name, source_updated_at=record.updated_at))
            refused += 1
    return refused
