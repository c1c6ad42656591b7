"""The Kingdee K/3 Cloud connector: keyset-paged ExecuteBillQuery reads, BatchSave writes by DIndex.

Change capture: a document's change time is the latest of FModifyDate and the dates its state
changes set (schema.Shape.state_keys); the engine's overlap window (`read_lag_s` = 60 s) covers
the ERP server's clock and saves that commit after a later-stamped one was read.

Keys: a number (FNumber, FBillNo) is looked up and compared as Kingdee compares it: case-insensitive,
trailing spaces ignored (`kingdee_key`, with its sources); `key_identity` tells the engine the same,
so two CRM codes that differ only so are one ERP record and the engine refuses the second.

`fetch` (current documents by id) is ExecuteBillQuery with `FilterString` "<pk> in (1,2,...)" over the
same FieldKeys as a read, so a fetched record has exactly the shape of a read one. Kingdee documents
ExecuteBillQuery's FilterString as an SQL-like condition on field keys and `Limit <= 2000`
(shared/reference/api-contracts.md section 1); `StartRow` pages a result larger than one call.
Computed views (order_shipment, customer_account) cannot be fetched by id.

Deletions (`on_delete`): base data is forbidden (禁用), not deleted — `ExcuteOperation` (the vendor's own
spelling) with `{"formid", "opNumber": "Forbid", "data": {"Ids": "1,2"}}` sets FForbidStatus to B
(api-contracts.md section 1: "ExcuteOperation Forbid/Enable" on BD_Customer). A customer is referenced by
orders and receivables, so both `deactivate` and `delete` forbid it; bills cannot be deleted once audited,
so no other form takes a deletion. An "already forbidden" answer counts as done.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from erphub.connectors.base import ConnectorBase, ConnectorSettings, SystemContext
from erphub.connectors.discovery import field_info
from erphub.connectors.http import HttpClient
from erphub.connectors.kingdee.auth import KingdeeLogin, classify_body
from erphub.connectors.kingdee.lines import CurrentLine, kept_meta, lines_from_meta, match_value, plan_lines
from erphub.connectors.kingdee.metadata import form_fields
from erphub.connectors.kingdee.query import (
    MAX_IN_LIST,
    MAX_LIMIT,
    SHANGHAI,
    build_record,
    change_time,
    changed_since_filter,
    complete_groups,
    find_status,
    group_rows,
    in_filter,
    is_success,
    quote,
    status_message,
)
from erphub.connectors.kingdee.schema import SHAPES, Field, Shape
from erphub.connectors.kingdee.settings import KingdeeSettings
from erphub.connectors.kingdee.views import VIEW_SPECS, KingdeeViews
from erphub.core.errors import AuthError, CannotFetch, PermanentError, ProtocolError, TransientError
from erphub.core.records import (
    Cursor,
    EntitySpec,
    Page,
    Record,
    RecordError,
    WriteAction,
    WriteRequest,
    WriteResult,
    owned_part,
)

FORM_STUB = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService."
# Forms whose records exist once per use-organisation (FUseOrgId) when allocated.
USE_ORG_FORMS = frozenset(s.form_id for s in SHAPES.values() if any(f.key == "FUseOrgId" for f in s.header))
# Kingdee publishes no rate limit; these defaults keep a shared ERP comfortable [assumed].
DEFAULT_RATE_PER_SECOND = 20.0
DEFAULT_CONCURRENCY = 4
# MsgCodes whose Errors belong to individual records (validation, not allowed, network control).
PER_RECORD_CODES = {0, 11, 12, 13}
TRANSIENT_CODES = {6, 13}  # database failure, network-control (lock) conflict
FORBIDDEN_NOT_DELETED = frozenset({"customer"})  # base data: a deletion forbids it (see the docstring)


def kingdee_key(number: str) -> str:
    """A number as K/3 Cloud tells numbers apart: case-insensitive, trailing spaces ignored.

    K/3 Cloud keeps its account sets in SQL Server with the collation Chinese_PRC_CI_AS [assumed:
    the default of Chinese installations; the sandbox compares the same way]; under it `=` ignores
    case, and SQL Server ignores trailing spaces in `=` and IN (support.microsoft.com/kb/316626).
    Leading and inner spaces and full/half width count as different here (width: the mappings fold
    codes to half width before they reach us).
    """
    return number.rstrip(" ").casefold()


_AS_IS = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    """Mapping output -> JSON Kingdee accepts (Decimals as numbers, datetimes as local text)."""
    kind = type(value)
    if kind in _AS_IS:  # most values: asked first, by exact type
        return value
    if kind is dict:
        return {k: v if type(v) in _AS_IS else _jsonable(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        local = value.astimezone(SHANGHAI) if value.tzinfo else value
        return local.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _ci_value(data: Any, key: str) -> Any:
    """A key of a Kingdee answer, matched blind to case (field keys ignore case)."""
    if not isinstance(data, dict):
        return None
    return next((v for k, v in data.items() if k.lower() == key.lower()), None)


def result_of(body: Any) -> dict[str, Any]:
    """The `Result` object of a Save/BatchSave answer ({} when there is none)."""
    result = body.get("Result") if isinstance(body, dict) else None
    return result if isinstance(result, dict) else {}


def _error_code(shape: Shape, field_name: str | None, message: str) -> str:
    if (field_name or "").lower() == shape.number_key.lower() or "已存在" in message or "重复" in message:
        return "duplicate_number"
    if "已审核" in message or "审核中" in message:
        return "audited"
    if "下游" in message:  # a line with downstream documents (outstock, invoice) cannot be deleted
        return "line_has_downstream"
    if shape.entry is not None and (
        (field_name or "").lower() == shape.entry.pk.lower() or ("分录内码" in message and "不存在" in message)
    ):
        return "entry_unknown"  # a line id the document no longer holds (deleted in the client)
    return "validation"


class _Outcome:
    """What one BatchSave said about one record."""

    def __init__(
        self,
        target_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        transient: bool = False,
        model: dict[str, Any] | None = None,
        returned: dict[str, Any] | None = None,
    ) -> None:
        self.target_id = target_id
        self.errors = errors or []
        self.transient = transient
        self.model = model or {}  # the Model sent
        self.returned = returned  # its NeedReturnData, when Kingdee gave one


class KingdeeConnector(ConnectorBase):
    kind: ClassVar[str] = "kingdee"
    settings_model: ClassVar[type[ConnectorSettings]] = KingdeeSettings
    # ExecuteBillQuery `Limit` <= 2000 (K-DOCS bill-query.md; api-contracts.md section 1). BatchSave has
    # no published cap: a batch is `settings.batch_size` records (100 by default [assumed]), see max_batch.
    max_page_size: ClassVar[int] = MAX_LIMIT

    def max_batch(self, entity: str) -> int:
        return self.settings.batch_size

    def __init__(self, settings: KingdeeSettings, context: SystemContext) -> None:
        self.settings = settings
        self.context = context
        self.auth = KingdeeLogin(
            mode=settings.auth_mode or "sign",
            acct_id=settings.acct_id,
            username=settings.username,
            lcid=settings.lcid,
            password=settings.password,
            app_id=settings.app_id,
            app_secret=settings.app_secret,
            max_age_s=settings.session_max_age_s,
        )
        self.http = HttpClient(
            context,
            base_url=settings.server_url,
            auth=self.auth,
            default_rate_per_second=DEFAULT_RATE_PER_SECOND,
            default_concurrency=DEFAULT_CONCURRENCY,
            classify_body=classify_body,
        )
        # Read-only views computed from several forms (order shipments, customer accounts).
        # The forms with this account set's custom F_ fields (settings.custom_fields) in their header.
        self.shapes: dict[str, Shape] = {
            name: replace(shape, header=shape.header + tuple(Field(k) for k in settings.custom_fields.get(name, [])))
            for name, shape in SHAPES.items()
        }
        self.views = KingdeeViews(
            self._query, self.read_changes, settings.receivable_days, lambda: datetime.now(SHANGHAI)
        )

    # ---- protocol ------------------------------------------------------------------------------

    def entities(self) -> Mapping[str, EntitySpec]:
        return {**{name: shape.spec() for name, shape in self.shapes.items()}, **VIEW_SPECS}

    def read_changes(
        self, entity: str, since: Cursor | None, *, page_size: int = 100, until: Cursor | None = None
    ) -> Iterator[Page]:
        """Documents whose change time (the latest of FModifyDate and the state dates: `Shape.stamp_keys`)
        is after `since`, in (change time, id) order.

        Two steps, because no single FilterString orders by the latest of several dates: first the ids
        and dates of every document changed since the cursor (one keyset-paged query per date, on the
        internal id, which never moves), ordered here; then those documents whole, a page at a time,
        by id. A document audited or cancelled after an earlier read is read again even though its
        FModifyDate did not move. StartRow is used only to read a single document whose entry lines
        alone fill more than one page.
        """
        if entity in VIEW_SPECS:
            yield from self.views.read(entity, since, until, page_size)
            return
        shape = self._shape(entity)
        changed = self._changed(shape, since, until)
        if not changed:
            yield Page([], None)
            return
        keys = shape.field_keys()
        size = max(1, min(page_size, MAX_LIMIT))
        for start in range(0, len(changed), size):
            chunk = changed[start : start + size]
            docs = self._documents(shape, keys, [pk for _, pk in chunk])
            records = sorted((docs[pk] for _, pk in chunk if pk in docs), key=lambda r: (r.updated_at, r.id))
            yield Page(records, Cursor(*chunk[-1]))

    def _changed(self, shape: Shape, since: Cursor | None, until: Cursor | None) -> list[tuple[datetime, str]]:
        """(change time, id) of every document changed after `since` and at or before `until`, in order."""
        keys = [shape.pk, *shape.stamp_keys()]
        stamps: dict[str, Sequence[Any]] = {}
        for filter_string in [changed_since_filter(key, since) for key in shape.stamp_keys()] if since else [""]:
            last: int | None = None
            while True:
                parts = [part for part in (filter_string, f"{shape.pk} > {last}" if last is not None else "") if part]
                rows = self._query(shape.form_id, keys, " and ".join(parts), f"{shape.pk} ASC", limit=MAX_LIMIT)
                for row in rows:
                    stamps[str(row[0])] = row[1:]
                if len(rows) < MAX_LIMIT:
                    break
                last = int(rows[-1][0])
        changed = []
        for pk, dates in stamps.items():
            moment = change_time(shape, dates, pk)
            if (since is None or since.is_before(moment, pk)) and (until is None or (moment, pk) <= until.key()):
                changed.append((moment, pk))
        return sorted(changed)

    def _documents(self, shape: Shape, keys: Sequence[str], pks: Sequence[str]) -> dict[str, Record]:
        """Whole documents by internal id (those that still exist), keyset-paged on the id."""
        order = f"{shape.pk} ASC" + (f", {shape.entry.pk_query_key()} ASC" if shape.entry else "")
        docs: dict[str, Record] = {}
        wanted = sorted({int(pk) for pk in pks})
        for start in range(0, len(wanted), MAX_IN_LIST):
            ids = ",".join(str(pk) for pk in wanted[start : start + MAX_IN_LIST])
            last: int | None = None
            while True:
                flt = f"{shape.pk} in ({ids})" + (f" and {shape.pk} > {last}" if last is not None else "")
                rows = self._query(shape.form_id, keys, flt, order, limit=MAX_LIMIT)
                groups, full = complete_groups(shape, rows, MAX_LIMIT)
                if full and not groups:
                    first_pk = group_rows(rows)[0][0]
                    groups = [(first_pk, self._document_rows(shape, keys, first_pk, MAX_LIMIT))]
                for _pk, doc_rows in groups:
                    record = build_record(shape, keys, doc_rows)
                    docs[record.id] = record
                if not full or not groups:
                    break
                last = int(groups[-1][0])
        return docs

    def write(self, entity: str, batch: Sequence[WriteRequest]) -> list[WriteResult]:
        shape = self._shape(entity)
        if not batch:
            return []
        keys = [self.request_key(request, shape.number_key) for request in batch]
        targets: list[str | None] = [request.target_id or None for request in batch]
        # A create retried after a lost answer or a crash must not duplicate: find keys that exist,
        # unless the engine looked them up for this very batch (`WriteRequest.key_looked_up`).
        unresolved = [k for k, t, r in zip(keys, targets, batch, strict=True)
                      if t is None and k and not r.key_looked_up]
        if unresolved:
            found = self._lookup_folded(shape, unresolved)
            targets = [
                t or (found.get(kingdee_key(k)) if k else None) for k, t in zip(keys, targets, strict=True)
            ]

        results: list[WriteResult | None] = [None] * len(batch)
        pending = list(range(len(batch)))
        # FID -> its current lines: an update keeps each line's FEntryID (lines.py), from the link
        # when it kept them for this document, else re-read from Kingdee.
        lines = self._kept_lines(shape, batch, targets)
        lines.update(self._current_lines(shape, [t for t in targets if t and t not in lines]))
        converted: set[int] = set()
        reread: set[int] = set()
        unaudited: set[int] = set()
        for _round in range(3):
            outcomes = self._save_round(shape, batch, keys, targets, pending, lines)
            retry: list[int] = []
            failed_creates = [i for i in pending if targets[i] is None and outcomes[i].target_id is None]
            now_found = (
                self._lookup_folded(shape, [k for i in failed_creates if (k := keys[i])])
                if failed_creates
                else {}
            )
            to_unaudit: list[int] = []
            for i in pending:
                outcome = outcomes[i]
                creating = targets[i] is None
                if outcome.target_id is not None:
                    action = WriteAction.CREATED if creating and i not in converted else WriteAction.UPDATED
                    results[i] = WriteResult(batch[i].source_id, outcome.target_id, action,
                                             target_meta=self._line_meta(shape, outcome))
                    continue
                key = keys[i]
                if creating and key and kingdee_key(key) in now_found and i not in converted:
                    # "Number already exists": it landed before (lost answer, crash) -> update it.
                    targets[i] = now_found[kingdee_key(key)]
                    lines.update(self._current_lines(shape, [now_found[kingdee_key(key)]]))
                    converted.add(i)
                    retry.append(i)
                    continue
                codes = {
                    _error_code(shape, e.get("FieldName"), str(e.get("Message", ""))) for e in outcome.errors
                }
                if not creating and "entry_unknown" in codes and i not in reread:
                    # The kept line ids are stale (lines edited in the client): re-read them, save again.
                    lines.update(self._current_lines(shape, [str(targets[i])]))
                    reread.add(i)
                    retry.append(i)
                    continue
                if (
                    not creating
                    and "audited" in codes
                    and self.settings.audits(entity)
                    and i not in unaudited
                    and shape.status_key
                ):
                    unaudited.add(i)
                    to_unaudit.append(i)
                    continue
                results[i] = self._failure(shape, batch[i], outcome, targets[i])
            if to_unaudit:
                ops = self._status_op(shape, "UnAudit", [str(targets[i]) for i in to_unaudit])
                for i, problem in zip(to_unaudit, ops, strict=True):
                    if problem is None:
                        retry.append(i)
                    else:
                        results[i] = WriteResult(
                            batch[i].source_id, targets[i], None, RecordError("audited", problem)
                        )
            pending = retry
            if not pending:
                break
        for i in pending:  # still unresolved after the last round
            results[i] = WriteResult(
                batch[i].source_id,
                targets[i],
                None,
                RecordError("unresolved", "record could not be saved after retries", transient=True),
            )
        if self.settings.audits(entity) and shape.status_key:
            results = self._submit_and_audit(shape, results)
        return [
            r
            if r is not None
            else WriteResult(
                batch[i].source_id, None, None, RecordError("no_result", "no result", transient=True)
            )
            for i, r in enumerate(results)
        ]

    def lookup(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        shape = self._shape(entity)
        found = self._lookup_folded(shape, [k for k in keys if k])
        return {k: found[kingdee_key(k)] for k in keys if k and kingdee_key(k) in found}

    def key_identity(self, entity: str, key: str) -> str:
        """Two numbers are one record to Kingdee when they differ only in case or trailing spaces."""
        return kingdee_key(key)

    def fetch(self, entity: str, ids: Sequence[str]) -> dict[str, Record]:
        """`SupportsFetch`: documents as they are now, by internal id (see the module docstring).

        Ids that are not Kingdee ids (not digits) cannot exist and are absent, as are deleted documents.
        """
        if entity in VIEW_SPECS:
            raise CannotFetch(f"kingdee view {entity!r} is computed and cannot be fetched by id",
                              system=self.context.name)
        shape = self._shape(entity)
        keys = shape.field_keys()
        wanted = sorted({int(i) for i in ids if str(i).isdigit()})
        order = f"{shape.pk} ASC" + (f", {shape.entry.pk_query_key()} ASC" if shape.entry is not None else "")
        found: dict[str, Record] = {}
        for start in range(0, len(wanted), MAX_IN_LIST):
            condition = f"{shape.pk} in ({','.join(str(i) for i in wanted[start:start + MAX_IN_LIST])})"
            rows: list[Sequence[Any]] = []
            while True:
                page = self._query(shape.form_id, keys, condition, order, limit=MAX_LIMIT, start_row=len(rows))
                rows += page
                if len(page) < MAX_LIMIT:
                    break
            for _, doc_rows in group_rows(rows):
                record = build_record(shape, keys, doc_rows)
                found[record.id] = record
        return found

    def delete_modes(self, entity: str) -> frozenset[str]:
        """`SupportsDelete`: only base data with a forbid status (customers) takes a deletion, as Forbid."""
        return frozenset({"deactivate", "delete"}) if entity in FORBIDDEN_NOT_DELETED else frozenset()

    def delete(self, entity: str, ids: Sequence[str], *, mode: str) -> list[WriteResult]:
        """Forbid these documents (see the module docstring); one result per id."""
        shape = self._shape(entity)
        if entity not in FORBIDDEN_NOT_DELETED:
            raise PermanentError(f"kingdee {entity!r} takes no deletion", system=self.context.name)
        if not ids:
            return []
        body = self._post("ExcuteOperation", {"formid": shape.form_id, "opNumber": "Forbid",
                                              "data": {"Ids": ",".join(str(i) for i in ids)}})
        status = find_status(body)
        if status is None:
            raise ProtocolError("ExcuteOperation answered without a ResponseStatus", system=self.context.name)
        problems: dict[int, str] = {}
        for err in status.get("Errors") or []:
            message = str(err.get("Message") or "") if isinstance(err, dict) else ""
            if isinstance(err, dict) and "已禁用" not in message:
                problems[int(err.get("DIndex") or 0)] = message or "Forbid failed"
        return [WriteResult(target_id, target_id, WriteAction.UPDATED) if n not in problems
                else WriteResult(target_id, target_id, None, RecordError("forbid_failed", problems[n]))
                for n, target_id in enumerate(ids)]

    def check(self) -> None:
        """Log in and read one customer row; raises the ConnectorError that says why not."""
        shape = self.shapes["customer"]
        self._query(shape.form_id, [shape.pk, shape.number_key], "", f"{shape.pk} ASC", limit=1)

    def close(self) -> None:
        self.http.close()

    def discover(self, entities: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`SupportsDiscovery`: each form's metadata from QueryBusinessInfo (K-SDK main.py lists the
        service; its answer shape is [unverifiable] beyond NeedReturnData.Entrys[].Fields[].Key).

        Listed: the connector's fields of the form with the metadata's caption, type and required flag,
        plus every custom `F_` field of the header (add those a mapping uses to `custom_fields`).
        """
        out: dict[str, dict[str, Any]] = {}
        for entity in entities:
            spec = self.spec(entity)
            if entity in VIEW_SPECS:
                out[entity] = {"native_name": spec.native_name, "key_field": spec.key_field, "source": "computed",
                               "fields": {f: field_info("computed", createable=False, updateable=False)
                                          for f in sorted(spec.fields or ())}}
                continue
            shape = self.shapes[entity]
            body = self._post("QueryBusinessInfo", {"data": {"FormId": shape.form_id}})
            status = find_status(body)
            if status is not None and not is_success(status):
                self._raise_status("QueryBusinessInfo", status)
            meta = ((body or {}).get("Result") or {}).get("NeedReturnData") if isinstance(body, dict) else None
            if not isinstance(meta, dict) or not isinstance(meta.get("Entrys"), list):
                raise ProtocolError("QueryBusinessInfo answered without Entrys", system=self.context.name)
            out[entity] = {"native_name": shape.form_id, "key_field": shape.number_key, "source": "QueryBusinessInfo",
                           "fields": form_fields(shape, meta["Entrys"])}
        return out

    # ---- calls -----------------------------------------------------------------------------------

    def _shape(self, entity: str) -> Shape:
        self.spec(entity)  # UnknownEntity, listing forms and views, when there is no such entity
        if entity in VIEW_SPECS:
            raise PermanentError(f"kingdee view {entity!r} is read only", system=self.context.name)
        return self.shapes[entity]

    def _post(self, method: str, payload: dict[str, Any], *, idempotent: bool = True) -> Any:
        return self.http.post_json(
            f"{FORM_STUB}{method}.common.kdsvc", payload, endpoint=method, idempotent=idempotent
        )

    def _raise_status(self, method: str, status: dict[str, Any]) -> None:
        code = status.get("MsgCode")
        message = f"{method} failed (MsgCode {code}): {status_message(status)}"
        if code in TRANSIENT_CODES:
            raise TransientError(message, system=self.context.name)
        if code == 2:
            raise AuthError(message, system=self.context.name)
        raise PermanentError(message, system=self.context.name)

    def _query(
        self,
        form_id: str,
        keys: Sequence[str],
        filter_string: str,
        order: str,
        *,
        limit: int,
        start_row: int = 0,
    ) -> list[list[Any]]:
        filter_string = self._with_use_org(form_id, filter_string)
        data = {
            "FormId": form_id,
            "FieldKeys": ",".join(keys),
            "FilterString": filter_string,
            "OrderString": order,
            "TopRowCount": 0,
            "StartRow": start_row,
            "Limit": limit,
        }
        body = self._post("ExecuteBillQuery", {"data": data})
        status = find_status(body)
        if status is not None:
            self._raise_status("ExecuteBillQuery", status)
        if not isinstance(body, list) or any(
            not isinstance(row, list) or len(row) != len(keys) for row in body
        ):
            raise ProtocolError(
                "ExecuteBillQuery did not answer a 2-D array in FieldKeys order", system=self.context.name
            )
        return body

    def _with_use_org(self, form_id: str, filter_string: str) -> str:
        """Multi-organisation tenants: an allocated customer/material has one record per use-org with
        the same FNumber (K-DOCS master-data.md, Allocate), so reads and lookups of forms with a
        FUseOrgId pick the configured use-organisation's copy."""
        org = self.settings.use_org_number
        if org is None or form_id not in USE_ORG_FORMS:
            return filter_string
        predicate = f"FUseOrgId.FNumber = {quote(org)}"
        return f"({filter_string}) and {predicate}" if filter_string else predicate

    def _document_rows(self, shape: Shape, keys: Sequence[str], pk: Any, limit: int) -> list[Sequence[Any]]:
        """Every entry row of one document, paged with StartRow (a document larger than a page)."""
        assert shape.entry is not None
        rows: list[Sequence[Any]] = []
        while True:
            page = self._query(
                shape.form_id,
                keys,
                f"{shape.pk} = {int(pk)}",
                f"{shape.entry.pk_query_key()} ASC",
                limit=limit,
                start_row=len(rows),
            )
            rows += page
            if len(page) < limit:
                return rows

    def _lookup_folded(self, shape: Shape, keys: Sequence[str]) -> dict[str, str]:
        """kingdee_key(number) -> id (Kingdee compares codes as its collation does: see kingdee_key).

        The filter carries the numbers without trailing spaces: SQL Server ignores them in `=`/IN anyway.
        """
        unique = sorted({k.rstrip(" ") for k in keys if k and k.rstrip(" ")})
        found: dict[str, str] = {}
        for start in range(0, len(unique), MAX_IN_LIST):
            chunk = unique[start : start + MAX_IN_LIST]
            rows = self._query(
                shape.form_id,
                [shape.pk, shape.number_key],
                in_filter(shape.number_key, chunk),
                f"{shape.pk} ASC",
                limit=MAX_LIMIT,
            )
            for pk, number in rows:
                if number is not None:
                    found.setdefault(kingdee_key(str(number)), str(pk))
        return found

    # ---- writing ---------------------------------------------------------------------------------

    def _model(
        self,
        shape: Shape,
        request: WriteRequest,
        key: str | None,
        target_id: str | None,
        lines: Mapping[str, list[CurrentLine]],
        drop: frozenset[str],
    ) -> dict[str, Any]:
        # A new dict; nested values stay shared until _jsonable rebuilds them below (plan_lines copies
        # the lines it changes): request.data, which the link keeps, is never changed here.
        data = {k: v for k, v in request.data.items() if k.lower() not in drop}
        if target_id is not None:  # Kingdee field keys ignore case
            data = owned_part(data, request.owned_fields, casefold=True)
        if (
            key
            and shape.number_key not in data
            and (
                target_id is None or request.owned_fields is None or shape.number_key in request.owned_fields
            )
        ):
            data[shape.number_key] = key
        if target_id is None:
            for org_field in shape.org_fields:
                data.setdefault(org_field, {"FNumber": self.settings.org_number})
        elif shape.entry is not None and isinstance(data.get(shape.entry.key), list):
            # Each sent line keeps its FEntryID; lines gone are removed on purpose (lines.py).
            plan = plan_lines(shape.entry, data[shape.entry.key], (lines or {}).get(str(target_id), []))
            data[shape.entry.key] = plan.rows
        return {shape.pk: int(target_id) if target_id else 0, **_jsonable(data)}

    @staticmethod
    def _never_sent(shape: Shape) -> frozenset[str]:
        """Lower-cased keys a Model never carries: the server's own fields and the primary key."""
        return frozenset({k.lower() for k in shape.readonly()} | {shape.pk.lower()})

    @staticmethod
    def _deletes_lines(shape: Shape, model: dict[str, Any], lines: Mapping[str, list[CurrentLine]]) -> bool:
        """Whether this update removes existing lines (then IsDeleteEntry must be true)."""
        if shape.entry is None or not model.get(shape.pk):
            return False
        rows = model.get(shape.entry.key)
        if not isinstance(rows, list):
            return False
        kept = {int(r.get(shape.entry.pk) or 0) for r in rows if isinstance(r, dict)}
        return any(entry_id not in kept for entry_id, _ in lines.get(str(model[shape.pk]), []))

    @staticmethod
    def _kept_lines(
        shape: Shape, batch: Sequence[WriteRequest], targets: Sequence[str | None]
    ) -> dict[str, list[CurrentLine]]:
        """The line ids links kept for the documents about to be updated (lines.py)."""
        if shape.entry is None:
            return {}
        out: dict[str, list[CurrentLine]] = {}
        for request, target in zip(batch, targets, strict=True):
            if target and (kept := lines_from_meta(shape.entry, target, request.target_meta)) is not None:
                out[target] = kept
        return out

    @staticmethod
    def _line_meta(shape: Shape, outcome: _Outcome) -> dict[str, Any] | None:
        """What the link keeps after a save: the saved lines' ids (None: no lines sent, keep the old)."""
        entry = shape.entry
        rows = outcome.model.get(entry.key) if entry is not None else None
        if entry is None or not isinstance(rows, list) or outcome.target_id is None:
            return None
        saved = None
        returned = _ci_value(outcome.returned or {}, entry.key)
        if isinstance(returned, list):
            try:
                saved = [int(_ci_value(r, entry.pk)) for r in returned]
            except (TypeError, ValueError):
                saved = None
        return kept_meta(entry, outcome.target_id, rows, saved)

    def _current_lines(self, shape: Shape, target_ids: Sequence[str]) -> dict[str, list[CurrentLine]]:
        """The existing entry lines of documents about to be updated: (FEntryID, match value) in order."""
        entry = shape.entry
        ids = sorted({int(t) for t in target_ids if str(t).isdigit()})
        if entry is None or not ids:
            return {}
        match = next((f for f in entry.fields if f.key == entry.match_key), None)
        keys = [shape.pk, entry.pk_query_key()] + ([match.query_key()] if match else [])
        out: dict[str, list[CurrentLine]] = {}
        for start in range(0, len(ids), MAX_IN_LIST):
            chunk = ",".join(str(i) for i in ids[start : start + MAX_IN_LIST])
            order = f"{shape.pk} ASC, {entry.pk_query_key()} ASC"
            rows = self._all_rows(shape.form_id, keys, f"{shape.pk} in ({chunk})", order)
            for row in rows:
                if row[1] in (None, 0, ""):
                    continue  # a document without lines answers one row with null entry columns
                value = match_value(row[2]) if match else None
                out.setdefault(str(row[0]), []).append((int(row[1]), value))
        return out

    def _all_rows(self, form_id: str, keys: Sequence[str], filter_string: str, order: str) -> list[list[Any]]:
        rows: list[list[Any]] = []
        while True:
            page = self._query(form_id, keys, filter_string, order, limit=MAX_LIMIT, start_row=len(rows))
            rows += page
            if len(page) < MAX_LIMIT:
                return rows

    def _need_update_fields(self, shape: Shape, model: dict[str, Any]) -> list[str]:
        fields: set[str] = set()
        for key, value in model.items():
            if key == shape.pk:
                continue
            fields.add(key)
            if isinstance(value, list):  # entry: list the entry key and its row fields
                for row in value:
                    if isinstance(row, dict):
                        fields.update(k for k in row if shape.entry is None or k != shape.entry.pk)
            elif isinstance(value, dict) and any(s.key == key for s in shape.subheads):
                fields.update(value)
        return sorted(fields)

    def _save_round(
        self,
        shape: Shape,
        batch: Sequence[WriteRequest],
        keys: list[str | None],
        targets: list[str | None],
        indices: list[int],
        lines: Mapping[str, list[CurrentLine]],
    ) -> dict[int, _Outcome]:
        # NeedUpDateFields is per call, so creates and each distinct field set go in separate calls.
        # IsDeleteEntry too: true only for the updates that remove lines on purpose.
        groups: dict[tuple[tuple[str, ...] | None, bool], list[tuple[int, dict[str, Any]]]] = {}
        drop = self._never_sent(shape)  # once per call, not per record
        for i in indices:
            model = self._model(shape, batch[i], keys[i], targets[i], lines, drop)
            nuf_key = None if targets[i] is None else tuple(self._need_update_fields(shape, model))
            groups.setdefault((nuf_key, self._deletes_lines(shape, model, lines)), []).append((i, model))
        outcomes: dict[int, _Outcome] = {}
        for (nuf, deletes), items in groups.items():
            for start in range(0, len(items), self.settings.batch_size):
                chunk = items[start : start + self.settings.batch_size]
                outcomes.update(
                    self._batch_save(shape, chunk, list(nuf) if nuf is not None else None, delete_entry=deletes)
                )
        return outcomes

    def _batch_save(
        self,
        shape: Shape,
        items: list[tuple[int, dict[str, Any]]],
        need_update_fields: list[str] | None,
        *,
        delete_entry: bool = False,
    ) -> dict[int, _Outcome]:
        data: dict[str, Any] = {"Model": [model for _, model in items], "IsDeleteEntry": delete_entry}
        if need_update_fields is not None:
            data["NeedUpDateFields"] = need_update_fields
        if shape.entry is not None:  # the saved lines' ids, for the link (entry fields as `entity.field`)
            data["NeedReturnFields"] = [shape.pk, f"{shape.entry.key}.{shape.entry.pk}"]
        # Creates are safe to resend only when every record carries its number (uniqueness makes a
        # resent create fail as "already exists", which write() turns into an update).
        idempotent = need_update_fields is not None or all(model.get(shape.number_key) for _, model in items)
        body = self._post("BatchSave", {"formid": shape.form_id, "data": data}, idempotent=idempotent)
        status = find_status(body)
        if status is None:
            raise ProtocolError("BatchSave answered without a ResponseStatus", system=self.context.name)
        successes = {
            int(e.get("DIndex", 0)): e for e in status.get("SuccessEntitys") or [] if isinstance(e, dict)
        }
        errors: dict[int, list[dict[str, Any]]] = {}
        for err in status.get("Errors") or []:
            if isinstance(err, dict):
                errors.setdefault(int(err.get("DIndex") or 0), []).append(err)
        code = status.get("MsgCode")
        per_record = (
            bool(successes) or len(items) == 1 or any(d > 0 for d in errors) or code in PER_RECORD_CODES
        )
        if not is_success(status) and not per_record:
            self._raise_status("BatchSave", status)
        returned = {
            str(_ci_value(r, shape.pk)): r for r in result_of(body).get("NeedReturnData") or [] if isinstance(r, dict)
        }
        out: dict[int, _Outcome] = {}
        for d_index, (i, model) in enumerate(items):
            if d_index in successes and successes[d_index].get("Id") not in (None, 0, ""):
                saved_id = str(successes[d_index]["Id"])
                out[i] = _Outcome(saved_id, model=model, returned=returned.get(saved_id))
            elif d_index in errors:
                out[i] = _Outcome(errors=errors[d_index], transient=code in TRANSIENT_CODES)
            else:
                out[i] = _Outcome(
                    errors=[{"FieldName": None, "Message": "BatchSave reported nothing for this record"}],
                    transient=True,
                )
        return out

    def _failure(
        self, shape: Shape, request: WriteRequest, outcome: _Outcome, target_id: str | None
    ) -> WriteResult:
        first = outcome.errors[0] if outcome.errors else {}
        message = "; ".join(str(e.get("Message")) for e in outcome.errors if e.get("Message")) or "refused"
        field = first.get("FieldName") or None
        code = _error_code(shape, field, message)
        if code == "line_has_downstream":
            message = (
                "the update removes order lines that already have downstream documents, which Kingdee "
                f"forbids; keep those lines in the source or change the order in Kingdee: {message}"
            )
        return WriteResult(
            request.source_id,
            target_id,
            None,
            RecordError(code, message[:1000], field, transient=outcome.transient),
        )

    # ---- Submit / Audit --------------------------------------------------------------------------

    def _status_op(self, shape: Shape, op: str, ids: list[str]) -> list[str | None]:
        """Run Submit/Audit/UnAudit on ids; per id None (done or already there) or the reason."""
        body = self._post(op, {"formid": shape.form_id, "data": {"Ids": ",".join(ids)}})
        status = find_status(body)
        if status is None:
            raise ProtocolError(f"{op} answered without a ResponseStatus", system=self.context.name)
        problems: list[str | None] = [None] * len(ids)
        for err in status.get("Errors") or []:
            if not isinstance(err, dict):
                continue
            d_index = int(err.get("DIndex") or 0)
            message = str(err.get("Message") or "")
            # Already in the wanted state (e.g. a retry after a lost answer) is not a failure.
            benign = (
                (op == "Submit" and ("已提交" in message or "已经审核" in message))
                or (op == "Audit" and "已经审核" in message)
                or (op == "UnAudit" and "未审核" in message)
            )
            if 0 <= d_index < len(ids) and not benign:
                problems[d_index] = message or f"{op} failed"
        return problems

    def _submit_and_audit(self, shape: Shape, results: list[WriteResult | None]) -> list[WriteResult | None]:
        saved = [(i, r) for i, r in enumerate(results) if r is not None and r.ok and r.target_id]
        if not saved:
            return results
        out = list(results)
        for op in ("Submit", "Audit"):
            ids = [str(r.target_id) for _, r in saved]
            problems = self._status_op(shape, op, ids)
            still: list[tuple[int, WriteResult]] = []
            for (i, r), problem in zip(saved, problems, strict=True):
                if problem is None:
                    still.append((i, r))
                else:
                    out[i] = WriteResult(
                        r.source_id,
                        r.target_id,
                        r.action,
                        RecordError(f"{op.lower()}_failed", f"saved but {op} failed: {problem}"),
                    )
            saved = still
            if not saved:
                break
        return out
