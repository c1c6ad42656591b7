"""In-memory Jiandaoyun app: records, v5 filter semantics, write validation, transactions.

Whole-request errors raise `ApiError(status, code, msg)` with the vendor's error codes (see
`sandbox/jiandaoyun/__init__.py` for their source). Per-record refusals are returned as messages.
Thread-safe: the server thread serves while tests seed and inspect from the main thread.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from erphub.sandbox.jiandaoyun.forms import (
    ADDRESS,
    APP_ID,
    DATETIME,
    FORMS,
    NUMBER,
    SUBFORM,
    SYSTEM_FIELDS,
    TEXT,
    FormDef,
)

MAX_BATCH = 100
MAX_IN_VALUES = 200
TRANSACTION_TTL_S = 3600.0
API_USER = {"name": "开放平台", "username": "api", "status": 1, "type": 0, "departments": [1]}


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def fmt_time(dt: datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z, as the vendor writes createTime/updateTime."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC) if value > 10**11 else None
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass
class _Transaction:
    created: float
    ids: list[str | None]


class JiandaoyunState:
    """The app's data. `clock` gives the server time stamped on writes (freeze it in tests)."""

    def __init__(self, app_id: str = APP_ID, forms: Mapping[str, FormDef] = FORMS) -> None:
        self.app_id = app_id
        self.forms = dict(forms)
        self.records: dict[str, dict[str, dict[str, Any]]] = {entry: {} for entry in self.forms}
        self.clock: Callable[[], datetime] = _now_ms
        self._lock = threading.RLock()
        self._next_id = 0x65F3A2B10000000000000000
        self._transactions: dict[tuple[str, str], _Transaction] = {}
        # Each form's data ids in order, kept between pages (the API pages by `data_id` > the last id):
        # rebuilt after a write, or when the records no longer match it in number (a test edited them).
        self._order: dict[str, tuple[int, list[str]]] = {}
        # Each form's (updateTime, data id) in time order, and the ids inside recent updateTime ranges
        # (erphub reads in windows of `updateTime`): a window's pages then cost what a page costs, not a
        # scan of every older record. Both are rebuilt after any write (`_version`).
        self._times: dict[str, tuple[int, list[tuple[datetime, str]]]] = {}
        self._ranges: dict[tuple[str, int, int, datetime | None, datetime | None], list[str]] = {}
        self._version = 0

    # ---- ids and time ------------------------------------------------------------------
    def new_id(self) -> str:
        with self._lock:
            self._next_id += 1
            return f"{self._next_id:024x}"

    def now(self) -> datetime:
        return self.clock()

    def freeze(self, at: datetime | None) -> None:
        """Stamp every write with `at` (None: real time again)."""
        self.clock = (lambda: at) if at is not None else _now_ms

    # ---- lookup helpers ----------------------------------------------------------------
    def form(self, app_id: Any, entry_id: Any) -> FormDef:
        if app_id != self.app_id:
            raise ApiError(400, 2004, "应用不存在")
        if entry_id not in self.forms:
            raise ApiError(400, 3000, "表单不存在")
        return self.forms[entry_id]

    def get(self, entry_id: str, data_id: str) -> dict[str, Any]:
        with self._lock:
            record = self.records[entry_id].get(data_id)
            if record is None:
                raise ApiError(400, 4001, "数据不存在")
            return _copy(record)

    def find(self, entry_id: str, field: str, value: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [_copy(r) for r in self.records[entry_id].values() if r.get(field) == value]

    def all(self, entry_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [_copy(r) for _, r in sorted(self.records[entry_id].items())]

    # ---- reading -----------------------------------------------------------------------
    def query(
        self,
        form: FormDef,
        *,
        after_id: str | None,
        limit: int,
        fields: list[str] | None,
        filter_: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]:
        match = compile_filter(form, filter_) if filter_ else (lambda r: True)
        with self._lock:
            records = self.records[form.entry_id]
            window = _time_range(filter_)
            # Candidates only: `match` still decides, so the index can only make a read faster.
            ids = self._ids_in_range(form.entry_id, *window) if window else self._sorted_ids(form.entry_id)
            out = []
            for data_id in ids[bisect.bisect_right(ids, after_id) if after_id else 0:]:
                record = records.get(data_id)
                if record is not None and match(record):
                    out.append(_project(record, fields))
                    if len(out) >= limit:
                        break
            return out

    def _sorted_ids(self, entry_id: str) -> list[str]:
        records = self.records[entry_id]
        cached = self._order.get(entry_id)
        if cached is None or cached[0] != self._version or len(cached[1]) != len(records):
            cached = self._order[entry_id] = (self._version, sorted(records))
        return cached[1]

    def _ids_in_range(self, entry_id: str, low: datetime | None, high: datetime | None) -> list[str]:
        """The data ids, in order, of the records stamped within [low, high] (None: open)."""
        key = (entry_id, self._version, len(self.records[entry_id]), low, high)
        cached = self._ranges.get(key)
        if cached is not None:
            return cached
        times = self._time_order(entry_id)
        start = 0 if low is None else bisect.bisect_left(times, (low, ""))
        end = len(times) if high is None else bisect.bisect_right(times, (high, "\uffff"))
        ids = sorted([data_id for _, data_id in times[start:end]])  # ids run with time: Timsort is near linear
        if len(self._ranges) >= 8:
            self._ranges.clear()
        self._ranges[key] = ids
        return ids

    def _time_order(self, entry_id: str) -> list[tuple[datetime, str]]:
        records = self.records[entry_id]
        cached = self._times.get(entry_id)
        if cached is None or cached[0] != self._version or len(cached[1]) != len(records):
            stamped = ((parse_time(r.get("updateTime")), data_id) for data_id, r in records.items())
            cached = self._times[entry_id] = (self._version, sorted((t, i) for t, i in stamped if t is not None))
        return cached[1]

    # ---- writing -----------------------------------------------------------------------
    def insert_plain(self, entry_id: str, values: Mapping[str, Any], at: datetime | None = None) -> str:
        """Seed a record from plain alias -> value data (sub-form rows as plain dicts)."""
        form = self.forms[entry_id]
        stamp = fmt_time(at or self.now())
        with self._lock:
            data_id = self.new_id()
            record: dict[str, Any] = {
                "_id": data_id,
                "appId": self.app_id,
                "entryId": entry_id,
                "creator": dict(API_USER),
                "updater": dict(API_USER),
                "createTime": stamp,
                "updateTime": stamp,
            }
            for alias, value in values.items():
                if alias in form.subforms:
                    value = [{"_id": self.new_id(), **row} for row in value]
                record[alias] = value
            self.records[entry_id][data_id] = record
            self._version += 1
            return data_id

    def create(self, form: FormDef, values: dict[str, Any]) -> str:
        stamp = fmt_time(self.now())
        with self._lock:
            data_id = self.new_id()
            record = {
                "_id": data_id,
                "appId": self.app_id,
                "entryId": form.entry_id,
                "creator": dict(API_USER),
                "updater": dict(API_USER),
                "createTime": stamp,
                "updateTime": stamp,
                **self._with_row_ids(form, values, None),
            }
            self.records[form.entry_id][data_id] = record
            self._version += 1
            return data_id

    def update(self, form: FormDef, data_id: str, values: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = self.records[form.entry_id].get(data_id)
            if record is None:
                raise ApiError(400, 4001, "数据不存在")
            before = {k: v for k, v in record.items() if k not in ("updateTime", "updater")}
            record.update(self._with_row_ids(form, values, record))
            after = {k: v for k, v in record.items() if k not in ("updateTime", "updater")}
            if after != before or any(a in form.subforms for a in values):
                record["updateTime"] = fmt_time(self.now())
                record["updater"] = dict(API_USER)
                self._version += 1
            return _copy(record)

    def _with_row_ids(
        self, form: FormDef, values: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Sub-form rows keep a correct row `_id` and get a new one otherwise (vendor rule)."""
        out = dict(values)
        for alias in form.subforms:
            if alias not in values:
                continue
            old_ids = {row.get("_id") for row in (existing or {}).get(alias, [])}
            rows = []
            for row in values[alias]:
                row = dict(row)
                if row.get("_id") not in old_ids:
                    row["_id"] = self.new_id()
                rows.append(row)
            out[alias] = rows
        return out

    def touch(
        self,
        entry_id: str,
        data_ids: Iterable[str],
        *,
        at: datetime | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> None:
        """Test hook: mark records as changed by a person in the CRM (bumps updateTime)."""
        stamp = fmt_time(at or self.now())
        with self._lock:
            for data_id in data_ids:
                record = self.records[entry_id][data_id]
                record.update(changes or {})
                record["updateTime"] = stamp
            self._version += 1

    def transaction(self, entry_id: str, transaction_id: str) -> _Transaction | None:
        with self._lock:
            now = time.monotonic()
            for key in [k for k, t in self._transactions.items() if now - t.created > TRANSACTION_TTL_S]:
                del self._transactions[key]
            return self._transactions.get((entry_id, transaction_id))

    def remember_transaction(self, entry_id: str, transaction_id: str, ids: list[str | None]) -> None:
        with self._lock:
            existing = self._transactions.get((entry_id, transaction_id))
            created = existing.created if existing else time.monotonic()
            self._transactions[(entry_id, transaction_id)] = _Transaction(created, ids)

    def delete(self, entry_id: str, data_id: str) -> None:
        with self._lock:
            self._version += 1
            if self.records[entry_id].pop(data_id, None) is None:
                raise ApiError(400, 4001, "数据不存在")

    @property
    def lock(self) -> threading.RLock:
        return self._lock


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key, value in out.items():
        if isinstance(value, list):
            out[key] = [dict(v) if isinstance(v, dict) else v for v in value]
        elif isinstance(value, dict):
            out[key] = dict(value)
    return out


def _project(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if not fields:
        return _copy(record)
    keep = {"_id", *fields}
    return _copy({k: v for k, v in record.items() if k in keep})


# ---- validation of written values ---------------------------------------------------------
def is_valid_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _check_value(kind: str, value: Any) -> str | None:
    if value is None:
        return None
    if kind == TEXT and not isinstance(value, str):
        return "应为文本"
    if kind == NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "应为数字"
    if kind == DATETIME and parse_time(value) is None:
        return "日期时间格式无效"
    if kind == ADDRESS and not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
        return "地址格式无效"
    return None


def unwrap(form: FormDef, data: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Decode `{"alias": {"value": v}}` into plain values; (values, None) or (None, why it fails)."""
    if not isinstance(data, dict):
        return None, "数据内容应为对象"
    values: dict[str, Any] = {}
    for alias, wrapped in data.items():
        kind = form.widget_type(alias)
        if kind is None:
            return None, f"字段 {alias} 不存在"
        if not isinstance(wrapped, dict) or "value" not in wrapped:
            return None, f'字段 {alias} 应写为 {{"value": ...}}'
        value = wrapped["value"]
        if kind == SUBFORM:
            rows, why = _unwrap_rows(form.subforms[alias], value)
            if why:
                return None, f"子表单 {alias}: {why}"
            values[alias] = rows
            continue
        why = _check_value(kind, value)
        if why:
            return None, f"字段 {alias} {why}"
        if kind == DATETIME and value is not None:
            parsed = parse_time(value)
            value = fmt_time(parsed) if parsed else value
        values[alias] = value
    return values, None


def _unwrap_rows(widgets: dict[str, str], value: Any) -> tuple[list[dict[str, Any]], str | None]:
    if not isinstance(value, list):
        return [], "应为数组"
    rows = []
    for n, row in enumerate(value, start=1):
        if not isinstance(row, dict):
            return [], f"第 {n} 行应为对象"
        plain: dict[str, Any] = {}
        for alias, wrapped in row.items():
            if not isinstance(wrapped, dict) or "value" not in wrapped:
                return [], f'第 {n} 行字段 {alias} 应写为 {{"value": ...}}'
            if alias == "_id":
                plain["_id"] = wrapped["value"]
                continue
            kind = widgets.get(alias)
            if kind is None:
                return [], f"第 {n} 行字段 {alias} 不存在"
            why = _check_value(kind, wrapped["value"])
            if why:
                return [], f"第 {n} 行字段 {alias} {why}"
            plain[alias] = wrapped["value"]
        rows.append(plain)
    return rows, None


# ---- filters -------------------------------------------------------------------------------
_METHODS = {"eq", "ne", "in", "nin", "range", "empty", "not_empty", "gt", "lt", "like"}


def _time_range(spec: Mapping[str, Any] | None) -> tuple[datetime | None, datetime | None] | None:
    """The `updateTime` range every match of an `and` filter lies in, if it has one (a valid filter:
    compile_filter has checked it)."""
    if not spec or spec.get("rel") != "and":
        return None
    for cond in spec.get("cond") or []:
        if isinstance(cond, Mapping) and cond.get("field") == "updateTime" and cond.get("method") == "range":
            raw = cond.get("value", [])
            values = raw if isinstance(raw, list) else [raw]
            low = parse_time(values[0]) if values else None
            high = parse_time(values[1]) if len(values) > 1 else None
            return low, high
    return None


def compile_filter(form: FormDef, spec: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """The v5 data filter `{"rel": "and"|"or", "cond": [{field, type, method, value}]}`."""
    if (
        not isinstance(spec, Mapping)
        or spec.get("rel") not in ("and", "or")
        or not isinstance(spec.get("cond"), list)
    ):
        raise ApiError(400, 4815, "筛选条件无效")
    tests = [_compile_cond(form, c) for c in spec["cond"]]
    if spec["rel"] == "and":
        return lambda r: all(t(r) for t in tests)
    return lambda r: any(t(r) for t in tests)


def _compile_cond(form: FormDef, cond: Any) -> Callable[[dict[str, Any]], bool]:
    if not isinstance(cond, Mapping) or "field" not in cond or cond.get("method") not in _METHODS:
        raise ApiError(400, 4815, "筛选条件无效")
    field = cond["field"]
    method = cond["method"]
    kind = SYSTEM_FIELDS.get(field) or form.widget_type(field)
    if kind is None:
        raise ApiError(400, 4815, f"筛选字段 {field} 不存在")
    raw = cond.get("value", [])
    values = raw if isinstance(raw, list) else [raw]
    if method in ("in", "nin") and len(values) > MAX_IN_VALUES:
        raise ApiError(400, 4815, f"筛选条件 {method} 最多 {MAX_IN_VALUES} 个值")

    def norm(v: Any) -> Any:
        if v is None:
            return None
        if kind == DATETIME:
            parsed = parse_time(v)
            if parsed is None:
                raise ApiError(400, 4815, f"筛选字段 {field} 的时间格式无效")
            return parsed
        if kind == NUMBER:
            try:
                return float(v)
            except (TypeError, ValueError):
                raise ApiError(400, 4815, f"筛选字段 {field} 应为数字") from None
        return v

    if method in ("empty", "not_empty"):
        want_empty = method == "empty"
        return lambda r: (r.get(field) in (None, "", [], {})) == want_empty
    if method == "like":
        needle = str(values[0]) if values else ""
        return lambda r: isinstance(r.get(field), str) and needle in r[field]
    targets = [norm(v) for v in values]

    def value_of(record: dict[str, Any]) -> Any:
        v = record.get(field)
        if v is None:
            return None
        return parse_time(v) if kind == DATETIME else (float(v) if kind == NUMBER else v)

    if method == "eq":
        return lambda r: bool(targets) and value_of(r) == targets[0]
    if method == "ne":
        return lambda r: bool(targets) and value_of(r) != targets[0]
    if method == "in":
        return lambda r: value_of(r) in targets
    if method == "nin":
        return lambda r: value_of(r) not in targets
    if method in ("gt", "lt"):
        if not targets or targets[0] is None:
            raise ApiError(400, 4815, "筛选条件无效")
        bound = targets[0]
        if method == "gt":
            return lambda r: (v := value_of(r)) is not None and v > bound
        return lambda r: (v := value_of(r)) is not None and v < bound
    # range: inclusive at both ends; a missing/None bound is open
    lo = targets[0] if targets else None
    hi = targets[1] if len(targets) > 1 else None

    def in_range(record: dict[str, Any]) -> bool:
        v = value_of(record)
        if v is None:
            return False
        return (lo is None or v >= lo) and (hi is None or v <= hi)

    return in_range
