"""The Jiandaoyun v5 open API as a Starlette app (see the package docstring for the contract)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from erphub.sandbox.common import Faults, WindowLimiter
from erphub.sandbox.jiandaoyun.forms import SUBFORM
from erphub.sandbox.jiandaoyun.store import (
    MAX_BATCH,
    ApiError,
    JiandaoyunState,
    is_valid_uuid,
    parse_time,
    unwrap,
)

PREFIX = "/api/v5/app/entry"
# Documented per-interface limits (requests per second) and the global limit of one team.
ENDPOINT_LIMITS = {
    "data/list": 30,
    "data/get": 30,
    "data/create": 20,
    "data/update": 20,
    "data/delete": 20,
    "data/batch_create": 10,
    "data/batch_update": 10,
    "widget/list": 30,
}
GLOBAL_LIMIT = 50

Handler = Callable[[dict[str, Any], str], dict[str, Any]]


def error(status: int, code: int, msg: str) -> JSONResponse:
    """Every API error is HTTP 400 with the vendor's `{code, msg}` (hc.jiandaoyun.com/open/11470;
    vendor-gaps.md, Jiandaoyun); `status` is kept by callers only as the kind of failure."""
    del status
    return JSONResponse({"code": code, "msg": msg}, status_code=400)


def build_app(
    state: JiandaoyunState, api_keys: set[str], faults: Faults, *, enforce_limits: bool = True
) -> Starlette:
    endpoint_windows = {name: WindowLimiter(limit) for name, limit in ENDPOINT_LIMITS.items()}
    global_window = WindowLimiter(GLOBAL_LIMIT)

    def wrap(name: str, handler: Handler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> JSONResponse:
            path = request.url.path
            if enforce_limits and (
                endpoint_windows[name].hit() is not None or global_window.hit() is not None
            ):
                return error(429, 8304, "调用频率超出限制，请等待1秒后重试")
            header = request.headers.get("authorization", "")
            scheme, _, key = header.partition(" ")
            if scheme.lower() != "bearer" or key not in api_keys or faults.take_session_expiry(path):
                return error(401, 8301, "API Key 鉴权验证失败")
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                return error(400, 1, "请求参数无效")
            if not isinstance(body, dict):
                return error(400, 1, "请求参数无效")
            try:
                return JSONResponse(handler(body, path))
            except ApiError as exc:
                return error(exc.status, exc.code, exc.msg)

        return endpoint

    # ---- reads -------------------------------------------------------------------------
    def data_list(body: dict[str, Any], path: str) -> dict[str, Any]:
        form = state.form(body.get("app_id"), body.get("entry_id"))
        limit = body.get("limit", 10)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ApiError(400, 1, "请求参数无效: limit 应为 1~100")
        fields = body.get("fields")
        if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
            raise ApiError(400, 1, "请求参数无效: fields")
        after = body.get("data_id") or None
        records = state.query(form, after_id=after, limit=limit, fields=fields, filter_=body.get("filter"))
        return {"data": records}

    def data_get(body: dict[str, Any], path: str) -> dict[str, Any]:
        form = state.form(body.get("app_id"), body.get("entry_id"))
        return {"data": state.get(form.entry_id, str(body.get("data_id", "")))}

    def widget_list(body: dict[str, Any], path: str) -> dict[str, Any]:
        form = state.form(body.get("app_id"), body.get("entry_id"))
        # widget/list: each widget's data name (alias, else its widget id), label and type, sub-form
        # items inside (vendor-gaps.md, Jiandaoyun: "widget/list returns each form's widgets").
        widgets: list[dict[str, Any]] = [
            {"name": alias, "widgetName": alias, "label": form.label(alias), "type": kind}
            for alias, kind in form.widgets.items()
        ]
        for alias, sub in form.subforms.items():
            items = [{"name": a, "widgetName": a, "label": form.label(f"{alias}.{a}"), "type": k}
                     for a, k in sub.items()]
            widgets.append(
                {"name": alias, "widgetName": alias, "label": form.label(alias), "type": SUBFORM, "items": items}
            )
        sys_widgets = [{"name": n} for n in ("creator", "updater", "createTime", "updateTime")]
        return {"widgets": widgets, "sysWidgets": sys_widgets}

    # ---- writes ------------------------------------------------------------------------
    def _refusal(form_key: str, values: dict[str, Any] | None, path: str, why: str | None) -> str | None:
        if why:
            return why
        return faults.record_failure(path, (values or {}).get(form_key))

    def data_create(body: dict[str, Any], path: str) -> dict[str, Any]:
        form = state.form(body.get("app_id"), body.get("entry_id"))
        values, why = unwrap(form, body.get("data"))
        why = _refusal(form.key_field, values, path, why)
        if why or values is None:
            raise ApiError(400, 4000, f"数据提交失败: {why}")
        data_id = state.create(form, values)
        return {"data": state.get(form.entry_id, data_id)}

    def data_batch_create(body: dict[str, Any], path: str) -> dict[str, Any]:
        form = state.form(body.get("app_id"), body.get("entry_id"))
        data_list = body.get("data_list")
        if not isinstance(data_list, list) or not data_list:
            raise ApiError(400, 1, "请求参数无效: data_list")
        if len(data_list) > MAX_BATCH:
            raise ApiError(400, 17024, "一次批量创建超出限制（上限100）")
        transaction_id = body.get("transaction_id")
        if transaction_id is not None and not is_valid_uuid(transaction_id):
            raise ApiError(400, 17025, "transaction_id 包含无效参数")
        with state.lock:
            prior = state.transaction(form.entry_id, transaction_id) if transaction_id else None
            if prior is not None and len(prior.ids) != len(data_list):
                raise ApiError(400, 17026, "transaction_id 已存在")
            ids: list[str | None] = []
            for n, data in enumerate(data_list):
                values, why = unwrap(form, data)
                why = _refusal(form.key_field, values, path, why)
                existing = prior.ids[n] if prior is not None else None
                if why or values is None:
                    ids.append(existing)
                elif existing is not None:
                    # A repeated transaction overwrites what the first one created; nothing new.
                    state.update(form, existing, values)
                    ids.append(existing)
                else:
                    ids.append(state.create(form, values))
            if transaction_id:
                state.remember_transaction(form.entry_id, transaction_id, ids)
        success_ids = [i for i in ids if i is not None]
        return {"status": "success", "success_count": len(success_ids), "success_ids": success_ids}

    def data_update(body: dict[str, Any], path: str) -> dict[str, Any]:
        form = state.form(body.get("app_id"), body.get("entry_id"))
        data_id = str(body.get("data_id", ""))
        current = state.get(form.entry_id, data_id)
        values, why = unwrap(form, body.get("data"))
        key = (values or {}).get(form.key_field, current.get(form.key_field))
        why = why or faults.record_failure(path, key)
        if why or values is None:
            raise ApiError(400, 4000, f"数据提交失败: {why}")
        return {"data": state.update(form, data_id, values)}

    def data_batch_update(body: dict[str, Any], path: str) -> dict[str, Any]:
        form = state.form(body.get("app_id"), body.get("entry_id"))
        data_ids = body.get("data_ids")
        if not isinstance(data_ids, list) or not data_ids:
            raise ApiError(400, 1, "请求参数无效: data_ids")
        if len(data_ids) > MAX_BATCH:
            raise ApiError(400, 17023, "一次批量更新超出限制（上限100）")
        data = body.get("data")
        if isinstance(data, dict) and any(alias in form.subforms for alias in data):
            raise ApiError(400, 17032, "字段类型不支持: 子表单不能批量修改")
        values, why = unwrap(form, data)
        if why or values is None:
            raise ApiError(400, 4000, f"数据提交失败: {why}")
        count = 0
        for data_id in data_ids:
            try:
                current = state.get(form.entry_id, str(data_id))
            except ApiError:
                continue
            if faults.record_failure(path, current.get(form.key_field)):
                continue
            state.update(form, str(data_id), values)
            count += 1
        return {"status": "success", "success_count": count}

    def data_delete(body: dict[str, Any], path: str) -> dict[str, Any]:
        form = state.form(body.get("app_id"), body.get("entry_id"))
        state.delete(form.entry_id, str(body.get("data_id", "")))
        return {"status": "success"}

    # ---- test-only control (not logged, not throttled, no auth) ------------------------
    async def control_touch(request: Request) -> JSONResponse:
        body = await request.json()
        entry_id = body["entry_id"]
        form = state.forms[entry_id]
        ids = list(body.get("data_ids") or [])
        for key in body.get("keys") or []:
            ids += [r["_id"] for r in state.find(entry_id, form.key_field, key)]
        at = parse_time(body["at"]) if body.get("at") else None
        state.touch(entry_id, ids, at=at, changes=body.get("changes"))
        return JSONResponse({"touched": len(ids), "data_ids": ids})

    async def control_seed(request: Request) -> JSONResponse:
        body = await request.json()
        at = parse_time(body["at"]) if body.get("at") else None
        ids = [state.insert_plain(body["entry_id"], row, at=at) for row in body["records"]]
        return JSONResponse({"data_ids": ids})

    async def control_clock(request: Request) -> JSONResponse:
        body = await request.json()
        frozen: datetime | None = parse_time(body.get("freeze")) if body.get("freeze") else None
        state.freeze(frozen)
        return JSONResponse({"frozen": body.get("freeze")})

    handlers: dict[str, Handler] = {
        "data/list": data_list,
        "data/get": data_get,
        "data/create": data_create,
        "data/batch_create": data_batch_create,
        "data/update": data_update,
        "data/batch_update": data_batch_update,
        "data/delete": data_delete,
        "widget/list": widget_list,
    }
    routes = [Route(f"{PREFIX}/{name}", wrap(name, h), methods=["POST"]) for name, h in handlers.items()]
    routes += [
        Route("/__sandbox__/jiandaoyun/touch", control_touch, methods=["POST"]),
        Route("/__sandbox__/jiandaoyun/seed", control_seed, methods=["POST"]),
        Route("/__sandbox__/jiandaoyun/clock", control_clock, methods=["POST"]),
    ]
    return Starlette(routes=routes)
