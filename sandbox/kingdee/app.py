"""The Kingdee K/3 Cloud WebAPI as a Starlette app: `POST {base}/k3cloud/<Service>.common.kdsvc`."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from erphub.sandbox.common import Faults, WindowLimiter
from erphub.sandbox.kingdee.auth import (
    SESSION_LOST,
    Credentials,
    Session,
    SessionBook,
    SignatureError,
    login_sign,
    verify_signed_headers,
)
from erphub.sandbox.kingdee.store import FieldError, KdRequestError, KingdeeStore, SaveOutcome

STUB = "Kingdee.BOS.WebApi.ServicesStub."
SUFFIX = ".common.kdsvc"
SID = "kdservice-sessionid"
DATA_CENTER_LIST = "Kingdee.BOS.ServiceFacade.ServicesStub.Account.AccountService.GetDataCenterList"


@dataclass
class KingdeeOptions:
    """Knobs of the sandbox; the defaults are the [assumed] values named in the package docstring."""

    idle_timeout_s: float = 1200.0  # session idle expiry
    calls_per_second: int | None = None  # MsgCode 14 above this many calls per second (None: off)
    max_skew_s: float = 300.0  # accepted clock skew of x-api-timestamp
    max_limit: int = 2000  # ExecuteBillQuery Limit cap
    # The account set's custom fields: {FormId: {"F_XXX_Key": kind}} (kinds as in forms.py).
    custom_fields: dict[str, dict[str, str]] = field(default_factory=dict)
    data_center_name: str = "erphub演示账套"
    credentials: Credentials = field(default_factory=Credentials)


@dataclass
class KingdeeState:
    """Everything a test may reach into: the data, the sessions, the options."""

    store: KingdeeStore
    sessions: SessionBook
    options: KingdeeOptions
    faults: Faults
    limiter: WindowLimiter | None = None
    async_results: dict[str, Any] = field(default_factory=dict)

    @property
    def credentials(self) -> Credentials:
        return self.options.credentials


def status_body(
    *,
    ok: bool,
    errors: list[dict[str, Any]] | None = None,
    success: list[dict[str, Any]] | None = None,
    msg_code: int = 0,
) -> dict[str, Any]:
    return {
        "ErrorCode": 0 if ok else 500,
        "IsSuccess": ok,
        "Errors": errors or [],
        "SuccessEntitys": success or [],
        "SuccessMessages": [],
        "MsgCode": msg_code,
    }


def error_envelope(message: str, msg_code: int, field_name: str | None = None) -> dict[str, Any]:
    err = {"FieldName": field_name, "Message": message, "DIndex": 0}
    return {"Result": {"ResponseStatus": status_body(ok=False, errors=[err], msg_code=msg_code)}}


def injected_error_body(status: int, reason: str) -> Any:
    """What an injected 429/5xx looks like: IIS/gateway error text wrapped as the SDK sees it."""
    return error_envelope(f"{status} {reason}", 4)


def _login_result(session: Session, state: KingdeeState) -> dict[str, Any]:
    creds = state.credentials
    return {
        "Message": None,
        "MessageCode": "CheckPasswordPolicy",
        "LoginResultType": 1,
        "Context": {
            "UserLocale": "zh-CN",
            "LogLocale": "zh-CN",
            "DBid": session.acct_id,
            "DatabaseType": 3,
            "SessionId": session.sid,
            "UseLanguages": [{"LocaleId": 2052, "LocaleName": "中文(简体)"}],
            "UserId": 100008,
            "UserName": session.username,
            "CustomName": state.options.data_center_name,
            "DisplayVersion": "8.2.0.20240513",
            "DataCenterName": state.options.data_center_name,
            "UserToken": secrets.token_hex(16),
            "CurrentOrganizationInfo": {
                "ID": 1,
                "AcctOrgType": "1",
                "Name": "总公司",
                "FunctionIds": [101, 102, 103, 104],
            },
            "IsCH_ZH_AutoTrans": False,
            "ClientType": 32,
            "WeiboAuthInfo": None,
            "UTimeZone": {
                "OffsetTicks": 288000000000,
                "StandardName": "(UTC+08:00)北京，重庆，香港特别行政区，乌鲁木齐",
                "Id": 230,
                "Number": "1078_SYS",
                "CanBeUsed": True,
            },
            "STimeZone": None,
            "GDCID": None,
            "Gsid": None,
            "TRLevel": 0,
            "ProductEdition": 0,
            "DataCenterNumber": creds.acct_id,
        },
        "KDSVCSessionId": session.sid,
        "FormId": None,
        "RedirectFormParam": None,
        "FormInputObject": None,
        "ErrorStackTrace": None,
        "Lcid": 0,
        "AccessToken": None,
        "CustomParam": {},
        "KdAccessResult": None,
        "IsSuccessByAPI": True,
    }


def _login_failed(message: str) -> dict[str, Any]:
    return {
        "Message": message,
        "MessageCode": None,
        "LoginResultType": 0,
        "Context": None,
        "KDSVCSessionId": None,
        "IsSuccessByAPI": False,
        "AccessToken": None,
    }


def _positional(body: Any, names: list[str]) -> list[Any]:
    """Login arguments: `{"parameters":[...]}` positional, or named keys (one client sends those)."""
    if isinstance(body, dict) and isinstance(body.get("parameters"), list):
        params = body["parameters"]
        if len(params) == 1 and isinstance(params[0], str) and params[0].startswith("{"):
            body = json.loads(params[0])
        else:
            return params
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        lowered = {k.lower(): v for k, v in body.items()}
        return [lowered.get(n.lower()) for n in names]
    return []


def _form_args(body: Any) -> tuple[str | None, Any]:
    """(formid, data) of a form operation; `data` may be an object or a JSON string."""
    formid: Any = None
    data: Any = None
    if isinstance(body, dict) and isinstance(body.get("parameters"), list):
        params = body["parameters"]
        if len(params) >= 2:
            formid, data = params[0], params[1]
        elif params:
            data = params[0]
    elif isinstance(body, dict):
        lowered = {k.lower(): v for k, v in body.items()}
        formid, data = lowered.get("formid"), lowered.get("data")
    if isinstance(data, str):
        data = json.loads(data) if data.strip() else {}
    return (str(formid) if formid is not None else None), (data if data is not None else {})


def _ci(data: dict[str, Any], key: str, default: Any = None) -> Any:
    for k, v in data.items():
        if k.lower() == key.lower():
            return v
    return default


def _bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


class KingdeeApp:
    """Request handling; one instance per sandbox."""

    def __init__(self, state: KingdeeState) -> None:
        self.state = state
        self.handlers: dict[str, Callable[[Any, str], Any]] = {
            "ExecuteBillQuery": self.execute_bill_query,
            "BillQuery": self.bill_query,
            "Save": self.save,
            "BatchSave": self.batch_save,
            "Draft": self.draft,
            "View": self.view,
            "Submit": lambda body, path: self.change_status(body, "Submit"),
            "Audit": lambda body, path: self.change_status(body, "Audit"),
            "UnAudit": lambda body, path: self.change_status(body, "UnAudit"),
            "ExcuteOperation": self.excute_operation,
            "QueryAsyncResult": self.query_async_result,
            "Allocate": self.allocate,
            "QueryBusinessInfo": self.query_business_info,
            "Delete": self.delete,
        }

    # ---- entry point -----------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        service = request.path_params["service"]
        if not service.endswith(SUFFIX):
            return PlainTextResponse("404 - File or directory not found.", status_code=404)
        name = service[: -len(SUFFIX)]
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return JSONResponse(error_envelope("请求的JSON数据格式不正确", 8))
        if name == DATA_CENTER_LIST:
            return JSONResponse(
                [
                    {
                        "Id": self.state.credentials.acct_id,
                        "Number": "erphub",
                        "Name": self.state.options.data_center_name,
                        "DataCenterType": "1",
                    }
                ]
            )
        if not name.startswith(STUB):
            return PlainTextResponse("404 - File or directory not found.", status_code=404)
        service_name, _, method = name[len(STUB) :].rpartition(".")
        if service_name == "AuthService":
            return self.auth(method, body)
        if service_name != "DynamicFormService" or method not in self.handlers:
            return JSONResponse(error_envelope(f"服务{name}不存在", 4))

        session, new_sid, failure = self.authenticate(request)
        if failure is not None:
            return failure
        assert session is not None
        if self.state.limiter is not None and self.state.limiter.hit(session.acct_id) is not None:
            return self._reply(error_envelope("调用频率超过限制，请稍后再试", 14), new_sid)
        try:
            result = self.handlers[method](body, request.url.path)
        except KdRequestError as exc:
            envelope = error_envelope(exc.message, exc.msg_code, exc.field_name)
            result = [[envelope]] if method == "ExecuteBillQuery" else envelope
        except ValueError as exc:  # data was a string but not JSON
            result = error_envelope(f"请求参数格式不正确：{exc}", 8)
        if isinstance(body, dict) and body.get("beginmethod") == "BeginQueryImpl":
            task_id = secrets.token_hex(8)
            self.state.async_results[task_id] = result
            result = {"Status": 2, "TaskId": task_id, "Result": result}
        return self._reply(result, new_sid)

    def _reply(self, payload: Any, new_sid: str | None) -> Response:
        response = JSONResponse(payload)
        if new_sid:
            response.set_cookie(SID, new_sid, path="/", httponly=False)
        return response

    # ---- auth ------------------------------------------------------------------------------------

    def authenticate(self, request: Request) -> tuple[Session | None, str | None, Response | None]:
        """The caller's session: an existing one by id, or one opened from valid SDK signed headers."""
        path = request.url.path
        sid = request.headers.get(SID) or request.cookies.get(SID)
        if self.state.faults.take_session_expiry(path) and sid:
            self.state.sessions.drop(sid)
        session = self.state.sessions.touch(sid)
        if session is not None:
            return session, None, None
        if "x-kd-appkey" in request.headers:
            try:
                acct, user, lcid = verify_signed_headers(
                    dict(request.headers), path, self.state.credentials, self.state.options.max_skew_s
                )
            except SignatureError as exc:
                if str(exc) == "Fail to verify thirty passport":
                    return None, None, PlainTextResponse(str(exc), status_code=500)
                return None, None, JSONResponse(error_envelope(str(exc), 1))
            session = self.state.sessions.open(acct, user, lcid)
            return session, session.sid, None
        return None, None, JSONResponse(error_envelope(SESSION_LOST, 1))

    def auth(self, method: str, body: Any) -> Response:
        creds = self.state.credentials
        if method == "LogOut":
            return JSONResponse(True)
        if method in ("ValidateUser", "ValidateUser2"):
            args = _positional(body, ["acctID", "username", "password", "lcid"])
            acct, user, password, lcid = (args + [None] * 4)[:4]
            ok = password == creds.password
        elif method in ("LoginByAppSecret", "LoginByAppSecret2"):
            args = _positional(body, ["acctID", "username", "appId", "appSec", "lcid"])
            if method.endswith("2") and len(args) >= 6:
                args = args[:4] + args[5:]
            acct, user, app_id, app_sec, lcid = (args + [None] * 5)[:5]
            ok = app_id == creds.app_id and app_sec == creds.app_secret
        elif method in ("LoginBySign", "LoginBySign2"):
            args = _positional(body, ["acctID", "username", "appId", "timestamp", "sign", "lcid"])
            if method.endswith("2") and len(args) >= 7:
                args = args[:5] + args[6:]
            acct, user, app_id, timestamp, sign, lcid = (args + [None] * 6)[:6]
            expected = login_sign(str(acct), str(user), creds.app_id, creds.app_secret, str(timestamp))
            ok = app_id == creds.app_id and str(sign).lower() == expected
        else:
            return JSONResponse(error_envelope(f"服务AuthService.{method}不存在", 4))
        if acct != creds.acct_id:
            return JSONResponse(_login_failed("数据中心不存在或已被禁用"))
        if user != creds.username or not ok:
            return JSONResponse(_login_failed("用户名或密码错误！"))
        try:
            lcid_value = int(lcid or creds.lcid)
        except (TypeError, ValueError):
            lcid_value = creds.lcid
        session = self.state.sessions.open(str(acct), str(user), lcid_value)
        response = JSONResponse(_login_result(session, self.state))
        response.set_cookie(SID, session.sid, path="/", httponly=False)
        response.set_cookie("ASP.NET_SessionId", secrets.token_hex(12), path="/", httponly=True)
        return response

    # ---- services --------------------------------------------------------------------------------

    def _query_args(self, body: Any) -> tuple[str, list[str], dict[str, Any]]:
        _, data = _form_args(body)
        if not isinstance(data, dict):
            raise KdRequestError("data必须是JSON对象", 8)
        form_id = _ci(data, "FormId")
        if not form_id:
            raise KdRequestError("FormId不能为空", 5)
        keys_raw = _ci(data, "FieldKeys", "")
        keys = [k.strip() for k in str(keys_raw).split(",") if k.strip()]
        return str(form_id), keys, data

    def _run_query(self, body: Any) -> tuple[list[str], list[list[Any]]]:
        form_id, keys, data = self._query_args(body)
        filter_string = _ci(data, "FilterString")
        if isinstance(filter_string, list):
            raise KdRequestError("本沙箱仅支持字符串形式的FilterString", 8)

        def as_int(name: str) -> int:
            try:
                return int(_ci(data, name, 0) or 0)
            except (TypeError, ValueError):
                raise KdRequestError(f"{name}必须是整数", 8) from None

        rows = self.state.store.query(
            form_id,
            keys,
            filter_string,
            _ci(data, "OrderString"),
            start_row=as_int("StartRow"),
            limit=as_int("Limit"),
            top_row_count=as_int("TopRowCount"),
        )
        return keys, rows

    def execute_bill_query(self, body: Any, path: str) -> Any:
        return self._run_query(body)[1]

    def bill_query(self, body: Any, path: str) -> Any:
        keys, rows = self._run_query(body)
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def _save_args(self, body: Any) -> tuple[str, dict[str, Any]]:
        form_id, data = _form_args(body)
        if not form_id:
            raise KdRequestError("formid不能为空", 5)
        if not isinstance(data, dict):
            raise KdRequestError("data必须是JSON对象", 8)
        return form_id, data

    def _save_models(
        self, form_id: str, data: dict[str, Any], models: list[Any], path: str, *, draft: bool = False
    ) -> list[SaveOutcome]:
        store = self.state.store
        form = store._form(form_id)
        nuf = _ci(data, "NeedUpDateFields") or None
        nrf = _ci(data, "NeedReturnFields") or None
        is_delete_entry = _bool(_ci(data, "IsDeleteEntry"), True)
        outcomes = []
        for model in models:
            number = None
            if isinstance(model, dict):
                number = _ci(model, form.number_key)
            reason = self.state.faults.record_failure(path, str(number) if number else None)
            if reason is not None:
                outcomes.append(SaveOutcome(None, number, (FieldError(None, reason),)))
                continue
            outcomes.append(store.save(form_id, model, nuf, is_delete_entry, nrf, draft=draft))
        return outcomes

    def _save_envelope(self, outcomes: list[SaveOutcome], single: bool) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        success: list[dict[str, Any]] = []
        for index, outcome in enumerate(outcomes):
            if outcome.ok:
                success.append({"Id": outcome.id, "Number": outcome.number, "DIndex": index})
            else:
                errors.extend(
                    {"FieldName": e.field_name, "Message": e.message, "DIndex": index} for e in outcome.errors
                )
        ok = not errors
        result: dict[str, Any] = {
            "ResponseStatus": status_body(ok=ok, errors=errors, success=success, msg_code=0 if ok else 11)
        }
        if single and ok and outcomes:
            result["Id"] = outcomes[0].id
            result["Number"] = outcomes[0].number
            result["NeedReturnData"] = [outcomes[0].return_data or {}]
        elif not single and success:
            result["NeedReturnData"] = [o.return_data or {} for o in outcomes if o.ok]
        return {"Result": result}

    def save(self, body: Any, path: str) -> Any:
        form_id, data = self._save_args(body)
        model = _ci(data, "Model")
        if model is None:
            raise KdRequestError("Model不能为空", 9)
        return self._save_envelope(self._save_models(form_id, data, [model], path), single=True)

    def draft(self, body: Any, path: str) -> Any:
        """暂存: Save's request and answer; the document stays in status Z (store.save, `draft`)."""
        form_id, data = self._save_args(body)
        model = _ci(data, "Model")
        if model is None:
            raise KdRequestError("Model不能为空", 9)
        return self._save_envelope(self._save_models(form_id, data, [model], path, draft=True), single=True)

    def batch_save(self, body: Any, path: str) -> Any:
        form_id, data = self._save_args(body)
        models = _ci(data, "Model")
        if not isinstance(models, list) or not models:
            raise KdRequestError("BatchSave的Model必须是非空数组", 9)
        return self._save_envelope(self._save_models(form_id, data, models, path), single=False)

    def view(self, body: Any, path: str) -> Any:
        form_id, data = self._save_args(body)
        number = _ci(data, "Number")
        doc_id = _ci(data, "Id")
        doc = self.state.store.get(form_id, number=number, doc_id=doc_id)
        if doc is None:
            raise KdRequestError("数据不存在或已被删除", 10)
        record = self.state.store.view(form_id, doc)
        return {"Result": {"ResponseStatus": status_body(ok=True), "Result": record}}

    def excute_operation(self, body: Any, path: str) -> Any:
        """`ExcuteOperation` (sic): `{"formid", "opNumber", "data"}` or positional [formid, opNumber, data]."""
        if isinstance(body, dict) and isinstance(body.get("parameters"), list) and len(body["parameters"]) >= 3:
            params = body["parameters"]
            op, rest = params[1], {"parameters": [params[0], params[2]]}
        else:
            op, rest = _ci(body, "opNumber") if isinstance(body, dict) else None, body
        if not isinstance(op, str) or not op:
            raise KdRequestError("opNumber不能为空", 8)
        if op not in ("Forbid", "Cancel"):  # the operations this sandbox knows (as the client's buttons)
            raise KdRequestError(f"该业务对象不支持{op}操作", 12)
        return self.change_status(rest, op)

    def change_status(self, body: Any, op: str) -> Any:
        form_id, data = self._save_args(body)
        numbers = _ci(data, "Numbers") or []
        if isinstance(numbers, str):
            numbers = [n for n in numbers.split(",") if n.strip()]
        outcomes = self.state.store.change_status(form_id, op, numbers, _ci(data, "Ids"))
        errors = [
            {"FieldName": None, "Message": o.error, "DIndex": i} for i, o in enumerate(outcomes) if o.error
        ]
        success = [
            {"Id": o.id, "Number": o.number, "DIndex": i} for i, o in enumerate(outcomes) if not o.error
        ]
        code = 0 if not errors else max(o.msg_code for o in outcomes)
        return {
            "Result": {
                "ResponseStatus": status_body(ok=not errors, errors=errors, success=success, msg_code=code)
            }
        }

    def delete(self, body: Any, path: str) -> Any:
        form_id, data = self._save_args(body)
        numbers = _ci(data, "Numbers") or []
        if isinstance(numbers, str):
            numbers = [n for n in numbers.split(",") if n.strip()]
        outcomes = self.state.store.delete(form_id, numbers, _ci(data, "Ids"))
        errors = [{"FieldName": None, "Message": o.error, "DIndex": i} for i, o in enumerate(outcomes) if o.error]
        success = [{"Id": o.id, "Number": o.number, "DIndex": i} for i, o in enumerate(outcomes) if not o.error]
        code = max((o.msg_code for o in outcomes), default=0)
        return {"Result": {"ResponseStatus": status_body(ok=not errors, errors=errors, success=success, msg_code=code)}}

    def query_business_info(self, body: Any, path: str) -> Any:
        """Form metadata: `{"data": {"FormId": ...}}` -> the form's entities and their fields.

        The answer's shape (NeedReturnData.Entrys[].Fields[] with Key, Name [{Key: lcid, Value}],
        ElementType, MustInput, IsCustom) follows third-party descriptions of QueryBusinessInfo
        [shape unverifiable]; it lists the custom `F_` fields configured for this account set.
        """
        _, data = _form_args(body)
        form_id = _ci(data, "FormId") if isinstance(data, dict) else None
        form = self.state.store.find_form(str(form_id or ""))
        if form is None:
            raise KdRequestError("业务对象不存在", 5)

        def fields(defs: Any) -> list[dict[str, Any]]:
            return [{"Key": f.key, "Name": [{"Key": 2052, "Value": f.caption or f.key}], "ElementType": f.kind,
                     "LookUpObject": f.ref, "MustInput": 1 if f.required else 0, "IsReadOnly": f.readonly,
                     "IsCustom": f.custom} for f in defs]

        entrys = [{"Key": "FBillHead", "EntityType": "HeadEntity", "PrimaryKey": form.pk,
                   "Fields": fields(form.fields)}]
        entrys += [{"Key": sub.key, "EntityType": "SubHeadEntity", "Fields": fields(sub.fields)}
                   for sub in form.subheads]
        entrys += [{"Key": e.key, "EntityType": "EntryEntity", "PrimaryKey": e.pk, "Fields": fields(e.fields)}
                   for e in form.entries]
        return {"Result": {"ResponseStatus": status_body(ok=True),
                           "NeedReturnData": {"Id": form.form_id, "Name": [{"Key": 2052, "Value": form.caption}],
                                              "Entrys": entrys}}}

    def allocate(self, body: Any, path: str) -> Any:
        form_id, data = self._save_args(body)
        outcomes = self.state.store.allocate(form_id, _ci(data, "PkIds"), _ci(data, "TOrgIds"))
        errors = [
            {"FieldName": None, "Message": o.error, "DIndex": i} for i, o in enumerate(outcomes) if o.error
        ]
        success = [
            {"Id": o.id, "Number": o.number, "DIndex": i} for i, o in enumerate(outcomes) if not o.error
        ]
        return {"Result": {"ResponseStatus": status_body(ok=not errors, errors=errors, success=success,
                                                         msg_code=max((o.msg_code for o in outcomes), default=0))}}

    def query_async_result(self, body: Any, path: str) -> Any:
        info = _ci(body, "queryInfo") if isinstance(body, dict) else None
        if isinstance(info, str):
            info = json.loads(info)
        task_id = str(_ci(info or {}, "TaskId", ""))
        if task_id not in self.state.async_results:
            raise KdRequestError("异步任务不存在", 10)
        return {"Status": 2, "TaskId": task_id, "Result": self.state.async_results.pop(task_id)}


def build_app(state: KingdeeState) -> Starlette:
    handler = KingdeeApp(state)
    return Starlette(routes=[Route("/k3cloud/{service:path}", handler.endpoint, methods=["POST"])])
