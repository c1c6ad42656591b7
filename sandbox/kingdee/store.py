"""The Kingdee sandbox's in-memory account set: documents per form, Save/Query/View/Submit/Audit rules.

Documents are kept the way K/3 Cloud keeps them in its tables: references hold the referenced
record's internal id (so `FCustId` alone queries as an id and `FCustId.FNumber` as its code),
numbers are Decimals, dates are naive datetimes in the account's local time (Asia/Shanghai),
entries are lists of rows with their own `FEntryID`, sub-heads are objects.

All public methods take the store lock: the HTTP app and a test harness may call at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from erphub.sandbox.kingdee.filter import (
    FilterSyntaxError,
    Node,
    evaluate,
    fields_of,
    fold_text,
    parse_datetime,
    parse_filter,
)
from erphub.sandbox.kingdee.forms import FORMS, EntryDef, FieldDef, FormDef, find_form
from erphub.sandbox.kingdee.index import NumberIndex
from erphub.sandbox.kingdee.paging import OrderCache, Row, rows_current

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_LIMIT = 2000
# Documents made from a form's lines: (downstream form, its entry, its source-order key, its material key).
DOWNSTREAM: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "SAL_SaleOrder": (("SAL_OUTSTOCK", "FEntity", "FSoorDerno", "FMaterialID"),),
}


def shanghai_now() -> datetime:
    """Kingdee stamps FModifyDate in the server's local time, without a zone, to the millisecond."""
    now = datetime.now(SHANGHAI).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_kd_datetime(value: datetime) -> str:
    """.NET style: `2025-01-02T14:49:44.537`, trailing zeros of the fraction dropped."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    millis = value.microsecond // 1000
    if millis:
        text += f".{millis:03d}".rstrip("0")
    return text


class KdRequestError(Exception):
    """A whole-request failure, answered as a ResponseStatus error with this MsgCode."""

    def __init__(self, message: str, msg_code: int = 4, field_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.msg_code = msg_code
        self.field_name = field_name


@dataclass(frozen=True, slots=True)
class FieldError:
    field_name: str | None
    message: str


@dataclass(frozen=True, slots=True)
class SaveOutcome:
    id: int | None
    number: str | None
    errors: tuple[FieldError, ...] = ()
    return_data: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class OpOutcome:
    id: int | None
    number: str | None
    error: str | None = None
    msg_code: int = 0


def _ci_get(data: dict[str, Any], key: str) -> tuple[bool, Any]:
    """Case-insensitive key lookup (Model keys are matched like Kingdee's field keys)."""
    if key in data:
        return True, data[key]
    lowered = key.lower()
    for k, v in data.items():
        if k.lower() == lowered:
            return True, v
    return False, None


def _ci_has(keys: Iterable[str], key: str) -> bool:
    lowered = key.lower()
    return any(k.lower() == lowered for k in keys)


class KingdeeStore:
    """One account set (数据中心). Thread-safe."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        max_limit: int = MAX_LIMIT,
        custom_fields: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock or shanghai_now
        self.max_limit = max_limit
        # This account set's forms: the standard ones plus the custom `F_` fields configured for it.
        self.forms: dict[str, FormDef] = dict(FORMS)
        for form_id, extra in (custom_fields or {}).items():
            form = find_form(form_id)
            if form is None:
                raise ValueError(f"custom_fields: no form {form_id!r}")
            if any(not key.startswith("F_") for key in extra):
                raise ValueError("custom field keys start with F_ (K/3 Cloud's rule for customer fields)")
            self.forms[form.form_id] = form.with_fields(
                tuple(FieldDef(key, kind, key, custom=True) for key, kind in extra.items())
            )
        self.docs: dict[str, dict[int, dict[str, Any]]] = {f: {} for f in self.forms}
        self._numbers: dict[str, dict[str, int]] = {f: {} for f in self.forms}
        # Every document (allocated copies included) by number, for queries that pin the number.
        self._by_number: dict[str, NumberIndex] = {f: NumberIndex() for f in self.forms}
        self._next_id: dict[str, int] = dict.fromkeys(self.forms, 100001)
        self._next_entry_id = 100001
        self._number_seq: dict[str, int] = dict.fromkeys(self.forms, 0)
        self._last_stamp = datetime.min
        # Filtered, sorted query rows kept between pages; every write below calls _orders.touch(form).
        self._orders = OrderCache()
        # Numbers whose next save must fail validation (fault injection: per-record failures).
        self.reject_numbers: dict[str, str] = {}
        # Called with (FormId, Model) before each API save: tests simulate a concurrent writer here.
        self.before_save: Callable[[str, Any], None] | None = None

    # ---- helpers ------------------------------------------------------------------------------

    def find_form(self, form_id: str) -> FormDef | None:
        standard = find_form(form_id)
        return self.forms.get(standard.form_id) if standard is not None else None

    def _form(self, form_id: str) -> FormDef:
        form = self.find_form(form_id)
        if form is None:
            raise KdRequestError("业务对象不存在", msg_code=5)
        return form

    def _stamp(self) -> datetime:
        now = self.clock()
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def by_number(self, form_id: str, number: str) -> dict[str, Any] | None:
        with self.lock:
            form = self._form(form_id)
            doc_id = self._numbers[form.form_id].get(fold_text(str(number)))
            return None if doc_id is None else self.docs[form.form_id][doc_id]

    def count_number(self, form_id: str, number: str) -> int:
        with self.lock:
            form = self._form(form_id)
            want = fold_text(str(number))
            return sum(
                1
                for d in self.docs[form.form_id].values()
                if fold_text(str(d.get(form.number_key) or "")) == want
            )

    def _ref_form_id(self, fdef: FieldDef, doc: dict[str, Any]) -> str:
        assert fdef.ref is not None
        if fdef.ref.startswith("@"):
            return str(doc.get(fdef.ref[1:]) or "BD_Customer")
        return fdef.ref

    # ---- conversion of Model values -------------------------------------------------------------

    def _convert(self, fdef: FieldDef, value: Any, doc: dict[str, Any]) -> tuple[Any, FieldError | None]:
        if value is None or value == "":
            return None, None
        if fdef.kind == "ref":
            if isinstance(value, dict):
                found, number = _ci_get(value, "FNumber")
                if not found:
                    found, number = _ci_get(value, "FNUMBER")
                if not found or number in (None, ""):
                    return None, None
            else:
                return None, FieldError(
                    fdef.key, f'字段[{fdef.caption}]的值格式不正确，应为{{"FNumber":...}}'
                )
            ref_form = self.find_form(self._ref_form_id(fdef, doc))
            if ref_form is None:
                return None, FieldError(fdef.key, f"字段[{fdef.caption}]的往来单位类型不存在")
            ref_id = self._numbers[ref_form.form_id].get(fold_text(str(number)))
            if ref_id is None:
                return None, FieldError(fdef.key, f"字段[{fdef.caption}]的值“{number}”在系统中不存在")
            return ref_id, None
        if fdef.kind in ("number", "int"):
            try:
                return Decimal(str(value)), None
            except InvalidOperation:
                return None, FieldError(fdef.key, f"字段[{fdef.caption}]的值“{value}”不是有效的数值")
        if fdef.kind in ("date", "datetime"):
            try:
                parsed = parse_datetime(str(value))
            except FilterSyntaxError:
                return None, FieldError(fdef.key, f"字段[{fdef.caption}]的值“{value}”不是有效的日期")
            return (
                parsed.replace(hour=0, minute=0, second=0, microsecond=0) if fdef.kind == "date" else parsed
            ), None
        return str(value), None

    def _apply_fields(
        self,
        fields: Sequence[FieldDef],
        target: dict[str, Any],
        model: dict[str, Any],
        allowed: Callable[[str], bool],
        replace: bool,
        errors: list[FieldError],
        context: dict[str, Any],
    ) -> None:
        # Type fields (polymorphic reference targets) first, so refs resolve against them.
        ordered = sorted(fields, key=lambda f: f.kind == "ref")
        for fdef in ordered:
            if fdef.readonly or not allowed(fdef.key):
                continue
            found, raw = _ci_get(model, fdef.key)
            if not found:
                if replace:
                    target[fdef.key] = None
                continue
            value, err = self._convert(fdef, raw, context)
            if err is not None:
                errors.append(err)
            else:
                target[fdef.key] = value

    # ---- Save -------------------------------------------------------------------------------------

    def save(
        self,
        form_id: str,
        model: Any,
        need_update_fields: Sequence[str] | None = None,
        is_delete_entry: bool = True,
        need_return_fields: Sequence[str] | None = None,
        *,
        draft: bool = False,
    ) -> SaveOutcome:
        """Save, or with `draft` the Draft service (暂存): same request and answer as Save, but the
        document is kept in status Z, unchecked for required fields and without an auto number
        (see `_save`). Sources and what is unverified: the package docstring, "Draft"."""
        with self.lock:
            form = self._form(form_id)
            if self.before_save is not None:
                self.before_save(form.form_id, model)
            return self._save(form, model, need_update_fields, is_delete_entry, need_return_fields, draft=draft)

    def _save(
        self,
        form: FormDef,
        model: Any,
        need_update_fields: Sequence[str] | None,
        is_delete_entry: bool,
        need_return_fields: Sequence[str] | None,
        *,
        draft: bool = False,
    ) -> SaveOutcome:
        if not isinstance(model, dict):
            return SaveOutcome(None, None, (FieldError(None, "Model必须是一个JSON对象"),))
        table = self.docs[form.form_id]
        _, pk_raw = _ci_get(model, form.pk)
        try:
            pk = int(pk_raw or 0)
        except (TypeError, ValueError):
            return SaveOutcome(
                None, None, (FieldError(form.pk, f"字段[{form.pk}]的值“{pk_raw}”不是有效的内码"),)
            )
        existing = table.get(pk) if pk else None
        if pk and existing is None:
            return SaveOutcome(
                None, None, (FieldError(form.pk, f"内码为{pk}的{form.caption}数据不存在或已被删除"),)
            )
        if draft and not form.status_key:
            return SaveOutcome(None, None, (FieldError(None, f"{form.caption}不支持暂存"),))  # [assumed] text
        if existing is not None and form.status_key:
            status = existing.get(form.status_key)
            if draft and status != "Z":  # 暂存 is for documents not yet saved; the text is [assumed]
                return SaveOutcome(
                    pk, existing.get(form.number_key), (FieldError(None, "单据已保存，不允许暂存"),)
                )
            if status == "C":
                return SaveOutcome(
                    pk, existing.get(form.number_key), (FieldError(None, "单据已审核，不允许修改"),)
                )
            if status == "B":
                return SaveOutcome(
                    pk, existing.get(form.number_key), (FieldError(None, "单据正在审核中，不允许修改"),)
                )

        updating = existing is not None
        partial = updating and bool(need_update_fields)
        nuf = list(need_update_fields or [])

        def allowed(key: str) -> bool:
            return not partial or _ci_has(nuf, key)

        errors: list[FieldError] = []
        doc: dict[str, Any] = _deep_copy(existing) if existing is not None else {}
        self._apply_fields(
            form.fields,
            doc,
            model,
            allowed,
            replace=updating and not partial,
            errors=errors,
            context=model_context(model),
        )
        for sub in form.subheads:
            found, sub_model = _ci_get(model, sub.key)
            sub_doc = doc.setdefault(sub.key, {})
            sub_allowed = lambda k, s=sub.key: allowed(k) or allowed(s)  # noqa: E731
            if found and isinstance(sub_model, dict):
                self._apply_fields(
                    sub.fields,
                    sub_doc,
                    sub_model,
                    sub_allowed,
                    replace=updating and not partial,
                    errors=errors,
                    context=model_context(model),
                )
            elif updating and not partial:
                for f in sub.fields:
                    sub_doc[f.key] = None
        for entry in form.entries:
            found, rows = _ci_get(model, entry.key)
            if partial and not _ci_has(nuf, entry.key):
                continue
            if not found:
                if updating and not partial and is_delete_entry:
                    errors.extend(self._downstream_errors(form, existing or {}, entry, doc.get(entry.key) or []))
                    doc[entry.key] = []
                doc.setdefault(entry.key, [])
                continue
            if not isinstance(rows, list):
                errors.append(FieldError(entry.key, f"单据体[{entry.caption}]必须是数组"))
                continue
            old_rows = {r[entry.pk]: r for r in doc.get(entry.key, [])}
            new_rows: list[dict[str, Any]] = []
            seen: set[int] = set()
            for line_no, row_model in enumerate(rows, start=1):
                if not isinstance(row_model, dict):
                    errors.append(FieldError(entry.key, f"单据体[{entry.caption}]第{line_no}行格式不正确"))
                    continue
                _, entry_id_raw = _ci_get(row_model, entry.pk)
                try:
                    entry_id = int(entry_id_raw or 0)
                except (TypeError, ValueError):
                    entry_id = 0
                row_errors: list[FieldError] = []
                if entry_id and entry_id not in old_rows:
                    # A line id this document does not hold (deleted in the client, or another
                    # document's): refused, never taken as a new line. The text is [assumed].
                    errors.append(FieldError(
                        entry.pk, f"{entry.caption}第{line_no}行：分录内码{entry_id}不存在或已被删除"))
                    continue
                if entry_id and entry_id in old_rows:
                    row = dict(old_rows[entry_id])
                    seen.add(entry_id)
                    self._apply_fields(
                        entry.fields,
                        row,
                        row_model,
                        allowed if partial else (lambda k: True),
                        replace=False,
                        errors=row_errors,
                        context=model_context(model),
                    )
                else:
                    row = {entry.pk: 0}
                    self._apply_fields(
                        entry.fields,
                        row,
                        row_model,
                        lambda k: True,
                        replace=True,
                        errors=row_errors,
                        context=model_context(model),
                    )
                for err in row_errors:
                    errors.append(FieldError(err.field_name, f"{entry.caption}第{line_no}行：{err.message}"))
                new_rows.append(row)
            if updating and not is_delete_entry:
                kept = [r for eid, r in old_rows.items() if eid not in seen]
                new_rows = kept + new_rows
            elif updating:
                removed = [r for eid, r in old_rows.items() if eid not in seen]
                errors.extend(self._downstream_errors(form, existing or {}, entry, removed))
            doc[entry.key] = new_rows

        if not draft:  # a draft is kept incomplete; Save or Submit checks it
            errors.extend(self._required_errors(form, doc))
        number = doc.get(form.number_key)
        if number:
            other = self._numbers[form.form_id].get(fold_text(str(number)))
            if other is not None and other != pk:
                kind = "单据编号" if form.is_bill else "编码"
                errors.append(
                    FieldError(form.number_key, f"{form.caption}{kind}“{number}”已存在，不允许重复")
                )
            reason = self.reject_numbers.pop(str(number), None)
            if reason is not None:
                errors.append(FieldError(None, reason))
        if errors:
            return SaveOutcome(pk or None, number, tuple(errors))

        # Valid: assign ids, derive amounts, stamp, index.
        now = self._stamp()
        if not updating:
            pk = self._next_id[form.form_id]
            self._next_id[form.form_id] += 1
            doc[form.pk] = pk
            doc["FCreateDate"] = now
            if form.status_key:
                doc[form.status_key] = "Z" if draft else "A"
            if form.locate("FForbidStatus"):
                doc["FForbidStatus"] = "A"
            if form.locate("FCancelStatus"):
                doc["FCancelStatus"] = "A"
        if form.status_key and not draft and doc.get(form.status_key) == "Z":
            doc[form.status_key] = "A"  # a draft saved: created
        if not number and not draft:  # "暂存的单据是没有编码的": a draft gets its number when saved
            number = self._assign_number(form, doc)
        for entry in form.entries:
            for row in doc.get(entry.key, []):
                if not row.get(entry.pk):
                    row[entry.pk] = self._next_entry_id
                    self._next_entry_id += 1
                if "FAllAmount" in {f.key for f in entry.fields} and row.get("FAllAmount") is None:
                    qty, price = row.get("FQty"), row.get("FTaxPrice")
                    if qty is not None and price is not None:
                        row["FAllAmount"] = (qty * price).quantize(Decimal("0.01"))
        if form.modify_key:
            doc[form.modify_key] = now
        if existing is not None:
            old_number = existing.get(form.number_key)
            self._by_number[form.form_id].remove(old_number, pk)
            if old_number:
                self._numbers[form.form_id].pop(fold_text(str(old_number)), None)
        self.docs[form.form_id][pk] = doc
        self._orders.touch(form.form_id)
        self._by_number[form.form_id].add(number, pk)
        if number:
            self._numbers[form.form_id][fold_text(str(number))] = pk
        return_data = None
        if need_return_fields:
            return_data = self._return_data(form, doc, need_return_fields)
        return SaveOutcome(pk, str(number) if number else None, (), return_data)

    def _assign_number(self, form: FormDef, doc: dict[str, Any]) -> str:
        """The next auto number (`XSDD000001`...), set on the document (indexing is the caller's)."""
        self._number_seq[form.form_id] += 1
        number = f"{form.number_prefix}{self._number_seq[form.form_id]:06d}"
        doc[form.number_key] = number
        return number

    def _return_data(self, form: FormDef, doc: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        """NeedReturnData of one saved document: header keys as in the Model, `Entry.Field` as the
        entry's rows holding those fields (K-DOCS bill-operations.md: NeedReturnFields names entry
        fields as `entityKey.fieldKey`; the answer's row shape is [assumed])."""
        model_out = self.to_model(form.form_id, doc)
        out = {k: v for k, v in model_out.items() if _ci_has(fields, k)}
        for entry in form.entries:
            wanted = [f.partition(".")[2] for f in fields if f.partition(".")[0].lower() == entry.key.lower()]
            if wanted and entry.key not in out:
                out[entry.key] = [
                    {k: v for k, v in row.items() if _ci_has(wanted, k)} for row in model_out[entry.key]
                ]
        return out

    def _downstream_errors(
        self, form: FormDef, doc: dict[str, Any], entry: EntryDef, removed: list[dict[str, Any]]
    ) -> list[FieldError]:
        """Deleting an entry line that a downstream document was made from is refused.

        K/3 Cloud keeps source-link tables (the outstock line names the order it was pushed from)
        and will not delete an order line such a line depends on; here the link is the outstock
        line's order number (FSoorDerno) plus its material. The message text is [assumed].
        """
        links = DOWNSTREAM.get(form.form_id)
        number = str(doc.get(form.number_key) or "").lower()
        if not links or not removed or not number:
            return []
        linked: set[Any] = set()
        for down_form, down_entry, order_key, down_material in links:
            for down in self.docs.get(down_form, {}).values():
                for line in down.get(down_entry) or []:
                    if str(line.get(order_key) or "").lower() == number:
                        linked.add(line.get(down_material))
        material = next((f.key for f in entry.fields if f.key.lower() == "fmaterialid"), None)
        errors = []
        for row in removed:
            if material is not None and row.get(material) in linked:
                errors.append(FieldError(
                    entry.key,
                    f"{entry.caption}内码为{row.get(entry.pk)}的分录已生成下游单据，不允许删除",
                ))
        return errors

    def _required_errors(self, form: FormDef, doc: dict[str, Any]) -> list[FieldError]:
        errors = []
        for f in form.fields:
            if f.required and doc.get(f.key) in (None, ""):
                errors.append(FieldError(f.key, f"字段[{f.caption}]是必录字段"))
        for sub in form.subheads:
            sub_doc = doc.get(sub.key) or {}
            for f in sub.fields:
                if f.required and sub_doc.get(f.key) in (None, ""):
                    errors.append(FieldError(f.key, f"字段[{f.caption}]是必录字段"))
        for entry in form.entries:
            for line_no, row in enumerate(doc.get(entry.key, []), start=1):
                for f in entry.fields:
                    if f.required and row.get(f.key) in (None, ""):
                        errors.append(
                            FieldError(f.key, f"{entry.caption}第{line_no}行：字段[{f.caption}]是必录字段")
                        )
        return errors

    def insert(
        self,
        form_id: str,
        model: dict[str, Any],
        *,
        modify_date: datetime | None = None,
        status: str | None = None,
    ) -> int:
        """Create a record directly (seeding and test harnesses); raises when the Model is invalid."""
        with self.lock:
            form = self._form(form_id)
            outcome = self._save(form, model, None, True, None)
            if not outcome.ok or outcome.id is None:
                raise ValueError("; ".join(e.message for e in outcome.errors))
            doc = self.docs[form.form_id][outcome.id]
            if modify_date is not None and form.modify_key:
                doc[form.modify_key] = modify_date
                doc["FCreateDate"] = modify_date
            if status is not None and form.status_key:
                doc[form.status_key] = status
                if status == "C" and form.locate("FApproveDate"):
                    doc["FApproveDate"] = modify_date or doc.get(form.modify_key or "FCreateDate")
            return outcome.id

    # ---- Allocate (分配) -----------------------------------------------------------------------------

    def allocate(self, form_id: str, pk_ids: Any, org_ids: Any) -> list[OpOutcome]:
        """Give base data to other use-organisations: one copy per org, same FNumber, own id.

        That is how a multi-organisation tenant holds an allocated customer or material: one record
        per use-organisation (FUseOrgId) sharing the create-org's FNumber (K-DOCS master-data.md,
        Allocate {PkIds, TOrgIds}). The number index keeps pointing at the original.
        """
        with self.lock:
            form = self._form(form_id)
            located = form.locate("FUseOrgId")
            if located is None:
                raise KdRequestError(f"{form.caption}不支持分配", 12)
            outcomes: list[OpOutcome] = []
            orgs = [int(o) for o in str(org_ids or "").split(",") if o.strip().isdigit()]
            for part in str(pk_ids or "").split(","):
                if not part.strip().isdigit():
                    continue
                original = self.docs[form.form_id].get(int(part))
                if original is None:
                    outcomes.append(OpOutcome(None, part, f"内码为{part}的数据不存在", 10))
                    continue
                for org in orgs:
                    copy_doc = _deep_copy(original)
                    pk = self._next_id[form.form_id]
                    self._next_id[form.form_id] += 1
                    copy_doc[form.pk] = pk
                    copy_doc[located[1].key] = org
                    copy_doc[form.modify_key or "FModifyDate"] = self._stamp()
                    self.docs[form.form_id][pk] = copy_doc
                    self._orders.touch(form.form_id)
                    self._by_number[form.form_id].add(copy_doc.get(form.number_key), pk)
                    outcomes.append(OpOutcome(pk, str(original.get(form.number_key))))
            return outcomes

    # ---- Delete -----------------------------------------------------------------------------------

    def delete(self, form_id: str, numbers: Sequence[str] | None, ids: Any) -> list[OpOutcome]:
        """Delete documents by Ids/Numbers: refused once submitted or audited, or when a downstream
        document was made from one of its lines (the messages are [assumed])."""
        with self.lock:
            form = self._form(form_id)
            outcomes: list[OpOutcome] = []
            for doc_id, label in self._targets(form, numbers, ids):
                doc = self.docs[form.form_id].get(doc_id) if doc_id is not None else None
                if doc is None or doc_id is None:
                    outcomes.append(OpOutcome(None, label, f"{label}的数据不存在或已被删除", 10))
                    continue
                number = doc.get(form.number_key)
                if form.status_key and doc.get(form.status_key) in ("B", "C"):
                    outcomes.append(OpOutcome(doc_id, number, f"单据{number}已提交或已审核，不允许删除", 11))
                    continue
                entry = form.entries[0] if form.entries else None
                blocked = self._downstream_errors(form, doc, entry, doc.get(entry.key) or []) if entry else []
                if blocked:
                    outcomes.append(OpOutcome(doc_id, number, blocked[0].message, 11))
                    continue
                del self.docs[form.form_id][doc_id]
                self._orders.touch(form.form_id)
                self._by_number[form.form_id].remove(number, doc_id)
                if number:
                    self._numbers[form.form_id].pop(str(number).lower(), None)
                outcomes.append(OpOutcome(doc_id, number))
            return outcomes

    # ---- Submit / Audit / UnAudit ------------------------------------------------------------------

    def _targets(
        self, form: FormDef, numbers: Sequence[str] | None, ids: Any
    ) -> list[tuple[int | None, str]]:
        out: list[tuple[int | None, str]] = []
        if ids:
            parts = ids if isinstance(ids, list) else str(ids).split(",")
            for part in parts:
                text = str(part).strip()
                if text:
                    try:
                        out.append((int(text), text))
                    except ValueError:
                        out.append((None, text))
        for number in numbers or []:
            doc_id = self._numbers[form.form_id].get(fold_text(str(number)))
            out.append((doc_id, str(number)))
        return out

    def change_status(
        self, form_id: str, op: str, numbers: Sequence[str] | None, ids: Any
    ) -> list[OpOutcome]:
        """Submit (A/D -> B), Audit (B -> C), UnAudit (C -> D), and what people do in the client:
        Cancel (作废, an unaudited bill) and Forbid (禁用, base data). One outcome per target, in order.

        None of them touches FModifyDate (only saves do); Audit stamps FApproveDate (UnAudit clears
        it), Cancel FCancelDate, Forbid FForbidDate, as K/3 Cloud does (vendor-gaps.md).
        """
        with self.lock:
            form = self._form(form_id)
            if form.status_key is None:
                raise KdRequestError("该业务对象不支持此操作", msg_code=12)
            targets = self._targets(form, numbers, ids)
            if not targets:
                raise KdRequestError("请至少传入一个单据编码或内码", msg_code=8)
            results = []
            for doc_id, label in targets:
                doc = self.docs[form.form_id].get(doc_id) if doc_id is not None else None
                if doc is None:
                    results.append(OpOutcome(None, label, f"编码或内码为“{label}”的数据不存在", 10))
                    continue
                number = str(doc.get(form.number_key))
                status = doc.get(form.status_key)
                self._orders.touch(form.form_id)
                if op in ("Cancel", "Forbid"):
                    error = self._flag(form, doc, op, number)
                    results.append(OpOutcome(doc_id, number, error, 11) if error else OpOutcome(doc_id, number))
                    continue
                if op == "Submit" and status == "Z":
                    error = self._complete_draft(form, doc, int(doc[form.pk]))
                    if error:
                        results.append(OpOutcome(doc_id, number, error, 11))
                        continue
                    number = str(doc.get(form.number_key))
                new_status, error = _transition(op, status, number)
                if error:
                    results.append(OpOutcome(doc_id, number, error, 11))
                    continue
                doc[form.status_key] = new_status
                if form.locate("FApproveDate"):
                    doc["FApproveDate"] = self._stamp() if op == "Audit" else (
                        None if op == "UnAudit" else doc.get("FApproveDate"))
                results.append(OpOutcome(doc_id, number))
            return results

    def _complete_draft(self, form: FormDef, doc: dict[str, Any], doc_id: int) -> str | None:
        """Submitting a draft checks what its Draft skipped (required fields) and gives it its number.
        [unverified] whether K/3 Cloud submits a Z document directly or wants a Save first."""
        missing = self._required_errors(form, doc)
        if missing:
            return missing[0].message
        if not doc.get(form.number_key):
            self._by_number[form.form_id].remove(None, doc_id)
            number = self._assign_number(form, doc)
            self._by_number[form.form_id].add(number, doc_id)
            self._numbers[form.form_id][fold_text(number)] = doc_id
        return None

    def _flag(self, form: FormDef, doc: dict[str, Any], op: str, number: str) -> str | None:
        """Cancel an unaudited bill or forbid base data: the status flag and its date, or why not."""
        flag, stamp = ("FCancelStatus", "FCancelDate") if op == "Cancel" else ("FForbidStatus", "FForbidDate")
        if not form.locate(flag):
            return f"该业务对象不支持{op}操作"
        if doc.get(flag) == "B":
            return f"编号为“{number}”的数据已{'作废' if op == 'Cancel' else '禁用'}"
        if op == "Cancel" and form.status_key and doc.get(form.status_key) in ("B", "C"):
            return f"编号为“{number}”的单据已提交或已审核，不允许作废"
        doc[flag] = "B"
        doc[stamp] = self._stamp()
        return None

    # ---- Query ------------------------------------------------------------------------------------------

    def query(
        self,
        form_id: str,
        field_keys: Sequence[str],
        filter_string: str | None = None,
        order_string: str | None = None,
        start_row: int = 0,
        limit: int = 0,
        top_row_count: int = 0,
    ) -> list[list[Any]]:
        with self.lock:
            form = self._form(form_id)
            if not field_keys:
                raise KdRequestError("FieldKeys不能为空", msg_code=8)
            try:
                node = parse_filter(filter_string)
            except FilterSyntaxError as exc:
                raise KdRequestError(f"过滤条件语法错误：{exc}", msg_code=4) from None
            order = _parse_order(order_string)
            mentioned = list(field_keys) + sorted(fields_of(node)) + [k for k, _ in order]
            resolvers = {key: self._resolver(form, key) for key in mentioned}
            entries = {
                loc[6:] for key in mentioned for loc in [resolvers[key].location] if loc.startswith("entry:")
            }
            if len(entries) > 1:
                raise KdRequestError("不支持在一次查询中同时查询多个单据体", msg_code=8)
            entry_key = next(iter(entries), None)
            docs = self.docs[form.form_id]
            # One filter and one sort per distinct query, not per page (paging.py says why and when not).
            cache_key = (form.form_id, filter_string or "", order_string or "", entry_key)
            reads = {form.form_id} | self._forms_read(form, [resolvers[k] for k in mentioned])
            top = top_row_count if top_row_count and top_row_count > 0 else None
            start = max(0, int(start_row or 0))
            end = start + min(int(limit), self.max_limit) if limit and limit > 0 else None

            def page_of(ordered: list[Row]) -> list[Row]:
                return ordered[:top][start:end]

            ordered = self._orders.get(cache_key, reads, docs)
            page = None if ordered is None else page_of(ordered)
            # A page whose document was replaced behind the store's back (a test editing docs) is recomputed.
            if page is None or not rows_current(page, docs, form.pk):
                ordered = self._filter_and_sort(form, node, order, resolvers, entry_key)
                self._orders.put(cache_key, reads, docs, ordered)
                page = page_of(ordered)
            return [[_json_value(resolvers[k].value(*r)) for k in field_keys] for r in page]

    def _filter_and_sort(
        self,
        form: FormDef,
        node: Node | None,
        order: list[tuple[str, bool]],
        resolvers: dict[str, _Column],
        entry_key: str | None,
    ) -> list[Row]:
        rows: list[Row] = []
        docs = self.docs[form.form_id]
        index = self._by_number[form.form_id].covering(docs, form.number_key)
        pinned = index.candidates(node, form.number_key)
        for doc_id in sorted(docs) if pinned is None else sorted(i for i in pinned if i in docs):
            doc = docs[doc_id]
            if entry_key is None:
                rows.append((doc, None))
            else:
                lines = doc.get(entry_key) or []
                # A header without lines still yields one row (a LEFT JOIN), its entry columns null.
                rows.extend((doc, line) for line in lines or [None])

        def passes(row: Row) -> bool:
            return evaluate(node, lambda k: (resolvers[k].value(*row), resolvers[k].kind))

        try:
            rows = [r for r in rows if passes(r)]
        except FilterSyntaxError as exc:
            raise KdRequestError(f"过滤条件错误：{exc}", msg_code=4) from None
        for key, desc in reversed(order):
            column = resolvers[key]

            def sort_key(row: Row, c: _Column = column) -> Any:
                return _sort_key(c.value(*row))

            rows.sort(key=sort_key, reverse=desc)
        return rows

    def _forms_read(self, form: FormDef, columns: Iterable[_Column]) -> set[str]:
        """The other forms a query's dotted columns look into (all of them for a typed reference)."""
        out: set[str] = set()
        for column in columns:
            if column.sub is None or column.fdef.ref is None:
                continue
            if column.fdef.ref.startswith("@"):
                return set(self.forms)
            ref_form = self.find_form(column.fdef.ref)
            out.add(ref_form.form_id if ref_form is not None else column.fdef.ref)
        return out

    def _resolver(self, form: FormDef, key: str) -> _Column:
        head, _, sub = key.strip().partition(".")
        located = form.locate(head)
        if located is None:
            raise KdRequestError(f"元数据中标识为{head}的字段不存在", msg_code=9)
        location, fdef = located
        sub_def: FieldDef | None = None
        if sub:
            if fdef.kind != "ref":
                raise KdRequestError(f"元数据中标识为{key}的字段不存在", msg_code=9)
            probe = (
                self.find_form(fdef.ref or "")
                if fdef.ref and not fdef.ref.startswith("@")
                else self.forms["BD_Customer"]
            )
            sub_located = probe.locate(sub) if probe is not None else None
            if sub_located is None:
                raise KdRequestError(f"元数据中标识为{key}的字段不存在", msg_code=9)
            sub_def = sub_located[1]
        return _Column(self, location, fdef, sub_def)

    # ---- View / Model ------------------------------------------------------------------------------------

    def get(self, form_id: str, *, number: str | None = None, doc_id: Any = None) -> dict[str, Any] | None:
        with self.lock:
            form = self._form(form_id)
            if doc_id not in (None, "", 0, "0"):
                try:
                    return self.docs[form.form_id].get(int(doc_id))
                except (TypeError, ValueError):
                    return None
            if number:
                return self.by_number(form.form_id, number)
            return None

    def ref_number(self, fdef: FieldDef, ref_id: Any, context: dict[str, Any]) -> str | None:
        ref_doc = self._ref_doc(fdef, ref_id, context)
        return None if ref_doc is None else ref_doc.get("FNumber")

    def _ref_doc(self, fdef: FieldDef, ref_id: Any, context: dict[str, Any]) -> dict[str, Any] | None:
        if ref_id is None:
            return None
        ref_form = self.find_form(self._ref_form_id(fdef, context))
        if ref_form is None:
            return None
        return self.docs[ref_form.form_id].get(int(ref_id))

    def to_model(self, form_id: str, doc: dict[str, Any]) -> dict[str, Any]:
        """A stored record in Save-Model shape: refs as {"FNumber": ...}, entries as lists."""
        with self.lock:
            form = self._form(form_id)
            out: dict[str, Any] = {form.pk: doc.get(form.pk)}
            for f in form.fields:
                out[f.key] = self._model_value(f, doc.get(f.key), doc)
            for sub in form.subheads:
                sub_doc = doc.get(sub.key) or {}
                out[sub.key] = {f.key: self._model_value(f, sub_doc.get(f.key), doc) for f in sub.fields}
            for entry in form.entries:
                out[entry.key] = [
                    {
                        entry.pk: row.get(entry.pk),
                        **{f.key: self._model_value(f, row.get(f.key), doc) for f in entry.fields},
                    }
                    for row in doc.get(entry.key, [])
                ]
            return out

    def _model_value(self, fdef: FieldDef, value: Any, doc: dict[str, Any]) -> Any:
        if fdef.kind == "ref":
            number = self.ref_number(fdef, value, doc)
            return None if number is None else {"FNumber": number}
        return _json_value(value)

    def view(self, form_id: str, doc: dict[str, Any], lcid: int = 2052) -> dict[str, Any]:
        """View's answer: ORM property names (the key without its leading F), references as
        {Id, Number, Name:[{Key: lcid, Value}]}, text names as localised arrays, entries as arrays."""
        with self.lock:
            form = self._form(form_id)

            def prop(key: str) -> str:
                return key[1:] if key[:1] in ("F", "f") and len(key) > 1 else key

            def value(f: FieldDef, raw: Any) -> Any:
                if f.kind == "ref":
                    ref_doc = self._ref_doc(f, raw, doc)
                    if ref_doc is None:
                        return None
                    return {
                        "Id": raw,
                        "Number": ref_doc.get("FNumber"),
                        "Name": [{"Key": lcid, "Value": ref_doc.get("FName")}],
                    }
                if f.key.lower() == "fname":
                    return [{"Key": lcid, "Value": raw}]
                return _json_value(raw)

            out: dict[str, Any] = {"Id": doc.get(form.pk)}
            for f in form.fields:
                out[prop(f.key)] = value(f, doc.get(f.key))
            if form.number_key.lower() == "fbillno":
                out["BillNo"] = doc.get(form.number_key)
            for sub in form.subheads:
                sub_doc = doc.get(sub.key) or {}
                out[prop(sub.key)] = [
                    {
                        "Id": doc.get(form.pk),
                        **{prop(f.key): value(f, sub_doc.get(f.key)) for f in sub.fields},
                    }
                ]
            for entry in form.entries:
                out[prop(entry.key)] = [
                    {
                        "Id": row.get(entry.pk),
                        "Seq": seq,
                        **{prop(f.key): value(f, row.get(f.key)) for f in entry.fields},
                    }
                    for seq, row in enumerate(doc.get(entry.key, []), start=1)
                ]
            return out


class _Column:
    """How to read one FieldKeys column out of a (document, entry row) pair."""

    def __init__(self, store: KingdeeStore, location: str, fdef: FieldDef, sub: FieldDef | None) -> None:
        self.store = store
        self.location = location
        self.fdef = fdef
        self.sub = sub
        if sub is not None:
            self.kind = "number" if sub.kind == "int" else ("int" if sub.kind == "ref" else sub.kind)
        else:
            self.kind = "int" if fdef.kind == "ref" else fdef.kind

    def value(self, doc: dict[str, Any], line: dict[str, Any] | None) -> Any:
        if self.location == "header":
            raw = doc.get(self.fdef.key)
        elif self.location.startswith("sub:"):
            raw = (doc.get(self.location[4:]) or {}).get(self.fdef.key)
        else:
            raw = None if line is None else line.get(self.fdef.key)
        if self.sub is None:
            return raw
        ref_doc = self.store._ref_doc(self.fdef, raw, doc)
        return None if ref_doc is None else ref_doc.get(self.sub.key)


def model_context(model: dict[str, Any]) -> dict[str, Any]:
    """Type fields a polymorphic reference needs (FCONTACTUNITTYPE...), taken from the Model."""
    return {k.upper(): v for k, v in model.items() if isinstance(v, str)} | {
        k: v for k, v in model.items() if isinstance(v, str)
    }


def _transition(op: str, status: Any, number: str) -> tuple[str | None, str | None]:
    if op == "Submit":
        if status in ("A", "D", "Z"):
            return "B", None
        if status == "B":
            return None, f"编号为“{number}”的单据已提交，不能重复提交"
        return None, f"编号为“{number}”的单据已经审核！"
    if op == "Audit":
        if status == "B":
            return "C", None
        if status == "C":
            return None, f"编号为“{number}”的单据已经审核！"
        return None, f"编号为“{number}”的单据未提交，不允许审核"
    if op == "UnAudit":
        if status == "C":
            return "D", None
        return None, f"编号为“{number}”的单据未审核，不允许反审核"
    return None, f"不支持的操作{op}"


def _parse_order(order_string: str | None) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for part in (order_string or "").split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise KdRequestError(f"排序条件格式不正确：{part.strip()}", msg_code=8)
        out.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return out


def _sort_key(value: Any) -> tuple[int, Any]:
    # SQL Server sorts NULL first in ascending order.
    if value is None:
        return (0, 0)
    if isinstance(value, str):
        return (1, value.casefold())
    return (1, value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_kd_datetime(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _deep_copy(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out[k] = dict(v)
        elif isinstance(v, list):
            out[k] = [dict(r) for r in v]
        else:
            out[k] = v
    return out
