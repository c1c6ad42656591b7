"""The create-or-update writer shared by the writable entities (customers, sales orders).

Writes look every key up first (party `code`, sale `reference`), so a retried or replayed write
updates what an earlier attempt created instead of duplicating it. Creates of new records go as
one list call (Tryton runs it in one transaction: all or nothing); when Tryton refuses the list
with a UserError the records are created one by one, so the bad one fails alone. When a create's
answer is lost (timeout after the server may have applied it), the keys are looked up again and
only the missing records are created.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from erphub.connectors.tryton.rpc import TrytonRPC
from erphub.core.errors import RecordWriteRefused, TransientError, TrytonUserError
from erphub.core.records import RecordError, WriteAction, WriteRequest, WriteResult

# Existing records by business key: key -> the row read (with at least its `id`).
Finder = Callable[[list[str]], dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class WritePlan:
    """How one entity is written: its model and business key, and the entity's own steps."""

    model: str
    key_field: str  # the business key in the record's data (also the Tryton field)
    what: str  # how a refusal names the record: "customer has no code"
    find: Finder
    create_values: Callable[[WriteRequest, str], dict[str, Any]]
    # Updates an existing record; says UNCHANGED when the target already had it (None: UPDATED).
    update: Callable[[WriteRequest, dict[str, Any]], WriteAction | None]
    # A workflow step run on the records just created (quote/confirm a sale), and its name for errors.
    after_create: Callable[[list[int]], None] | None = None
    after_create_name: str = ""


def write_batch(rpc: TrytonRPC, plan: WritePlan, batch: Sequence[WriteRequest]) -> list[WriteResult]:
    """One result per request, in order: existing keys are updated, new ones created."""
    results: dict[int, WriteResult] = {}
    keys: dict[int, str] = {}
    for n, req in enumerate(batch):
        try:
            keys[n] = _business_key(req, plan)
        except RecordWriteRefused as exc:
            results[n] = WriteResult(req.source_id, error=exc.error)
    existing = plan.find(sorted(set(keys.values())))
    to_create: dict[int, dict[str, Any]] = {}
    claimed: set[str] = set()
    for n, key in keys.items():
        req = batch[n]
        if key in existing:
            results[n] = _update(req, existing[key], plan)
            continue
        if key in claimed:  # two requests for one new key in a batch: the first creates it
            results[n] = WriteResult(
                req.source_id,
                error=RecordError("duplicate_key", f"key {key!r} appears twice in one batch", transient=True),
            )
            continue
        try:
            to_create[n] = plan.create_values(req, key)
            claimed.add(key)
        except RecordWriteRefused as exc:
            results[n] = WriteResult(req.source_id, error=exc.error)
        except TrytonUserError as exc:
            results[n] = WriteResult(req.source_id, error=_refusal(exc))
    if to_create:
        results.update(_create_all(rpc, plan, batch, keys, to_create))
    return [results[n] for n in range(len(batch))]


def _business_key(req: WriteRequest, plan: WritePlan) -> str:
    """The business key a write is matched by (party code, sale reference): the data's, else the mapping's."""
    key = req.data.get(plan.key_field) or req.key
    if not key:
        raise RecordWriteRefused("missing_key", f"{plan.what} has no {plan.key_field}", plan.key_field)
    return str(key)


def _refusal(exc: TrytonUserError) -> RecordError:
    """A Tryton UserError of one record's call, as that record's error."""
    return RecordWriteRefused(exc.kind, exc.detail).error


def _update(req: WriteRequest, existing: dict[str, Any], plan: WritePlan) -> WriteResult:
    try:
        action = plan.update(req, existing)
    except RecordWriteRefused as exc:
        return WriteResult(req.source_id, error=exc.error)
    except TrytonUserError as exc:
        return WriteResult(req.source_id, error=_refusal(exc))
    return WriteResult(req.source_id, str(existing["id"]), action or WriteAction.UPDATED)


def _create_all(
    rpc: TrytonRPC,
    plan: WritePlan,
    batch: Sequence[WriteRequest],
    keys: Mapping[int, str],
    values: dict[int, dict[str, Any]],
) -> dict[int, WriteResult]:
    order = sorted(values)
    created: dict[int, int] = {}
    failed: dict[int, RecordError] = {}
    try:
        ids = rpc.create(plan.model, [values[n] for n in order])
        created = dict(zip(order, ids, strict=True))
    except (TrytonUserError, TransientError) as exc:
        # A UserError: all or nothing, so find the bad record(s) by creating one at a time.
        # A lost answer: the list may have been applied, so look before creating again.
        found = plan.find([keys[n] for n in order]) if isinstance(exc, TransientError) else {}
        for n in order:
            if keys[n] in found:
                created[n] = int(found[keys[n]]["id"])
                continue
            try:
                created[n] = _create_one(rpc, plan, values[n], keys[n])
            except TrytonUserError as one:
                failed[n] = _refusal(one)
            except TransientError as one:
                failed[n] = RecordError("transient", str(one), transient=True)
    if plan.after_create is not None and created:
        failed.update(_after_create(plan, plan.after_create, created))
    out: dict[int, WriteResult] = {}
    for n in order:
        req = batch[n]
        if n in failed:
            out[n] = WriteResult(req.source_id, str(created[n]) if n in created else None, error=failed[n])
        else:
            out[n] = WriteResult(req.source_id, str(created[n]), WriteAction.CREATED)
    return out


def _create_one(rpc: TrytonRPC, plan: WritePlan, values: dict[str, Any], key: str) -> int:
    try:
        return rpc.create(plan.model, [values])[0]
    except TransientError:
        found = plan.find([key])
        if key in found:
            return int(found[key]["id"])
        raise


def _after_create(
    plan: WritePlan, step: Callable[[list[int]], None], created: dict[int, int]
) -> dict[int, RecordError]:
    """Run a workflow step on the new records; a refusal is isolated like a create."""
    try:
        step(list(created.values()))
        return {}
    except TrytonUserError:
        failed: dict[int, RecordError] = {}
        for n, record_id in created.items():
            try:
                step([record_id])
            except TrytonUserError as exc:
                failed[n] = RecordError(
                    exc.kind, f"created, but {plan.after_create_name} failed: {exc.detail}", "state"
                )
        return failed
