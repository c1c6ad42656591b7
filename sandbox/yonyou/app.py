"""The YonBIP open API over HTTP: gateway discovery, signed token, business calls with `access_token`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from erphub.sandbox.common import WindowLimiter
from erphub.sandbox.faults import Faults
from erphub.sandbox.yonyou.store import YonyouError, YonyouStore

GATEWAY_PREFIX = "/iuap-api-gateway"
AUTH_PREFIX = "/iuap-api-auth"
TOKEN_PATHS = ("/open-auth/selfAppAuth/base/v1/getAccessToken", "/open-auth/selfAppAuth/getAccessToken")


@dataclass
class YonyouOptions:
    app_key: str = "yonyou_demo_app_key"
    app_secret: str = "yonyou_demo_app_secret"
    tenant_id: str = "demo_tenant"
    token_ttl_s: int = 7200  # `expire` of getAccessToken [reference]
    timestamp_skew_s: float = 300.0  # [assumed] how old a signed timestamp may be
    calls_per_second: int | None = None  # [assumed] vendor limit not published; None: unlimited
    max_customer_page: int = 5000  # [reference]
    max_order_page: int = 500  # [assumed]
    receipt_path: str = "/yonbip/fi/receivebill"  # [assumed] no receipt API confirmed
    empty_customer_code: str | None = None  # "118001" mimics data centres that answer an empty search so
    # False: order rows carry no `<ref>_code` companions, only ids (+ `_name`), as the voucherorder page
    # documents; the convention itself is assumed from sibling SD pages (see __init__).
    ref_codes: bool = True


def _no_codes(row: dict[str, Any]) -> dict[str, Any]:
    """An order row (and its lines) without the `<ref>_code` companions of its references."""
    out = {k: v for k, v in row.items() if not (k.endswith("_code") and k[: -len("_code")] in row)}
    if isinstance(row.get("orderDetails"), list):
        out["orderDetails"] = [_no_codes(line) for line in row["orderDetails"]]
    return out


def ok(data: Any, message: str = "操作成功") -> JSONResponse:
    return JSONResponse({"code": "200", "message": message, "data": data})


def fail(code: str, message: str, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def expected_signature(app_key: str, timestamp: str, app_secret: str) -> str:
    """Base64(HmacSHA256(appSecret, "appKey<k>timestamp<ms>")) — the value before URL encoding."""
    message = f"appKey{app_key}timestamp{timestamp}".encode()
    digest = hmac.new(app_secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class TokenBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}

    def issue(self, ttl_s: float) -> str:
        token = secrets.token_hex(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl_s
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
            if expires is None:
                return False
            if expires <= time.monotonic():
                del self._tokens[token]
                return False
            return True

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    def issued(self) -> int:
        with self._lock:
            return len(self._tokens)


Handler = Callable[[Request, str], Awaitable[Response]]


def build_app(store: YonyouStore, options: YonyouOptions, faults: Faults, tokens: TokenBook) -> Starlette:
    limiter = WindowLimiter(options.calls_per_second) if options.calls_per_second else None
    token_requests = [0]

    async def gateway_address(request: Request) -> Response:
        tenant = request.query_params.get("tenantId")
        if tenant != options.tenant_id:
            # [assumed] code/message for an unknown tenant
            return fail("999", f"租户[{tenant}]不存在")
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "code": "00000",
                "message": "成功！",
                "data": {"gatewayUrl": base + GATEWAY_PREFIX, "tokenUrl": base + AUTH_PREFIX},
            }
        )

    async def access_token(request: Request) -> Response:
        token_requests[0] += 1
        # Parse the raw query ourselves: the signature must arrive URL-encoded exactly once.
        query = parse_qs(request.url.query, keep_blank_values=True)
        app_key = (query.get("appKey") or [""])[0]
        timestamp = (query.get("timestamp") or [""])[0]
        signature = (query.get("signature") or [""])[0]
        if not app_key or app_key != options.app_key:
            return fail("10018", "appKey不存在或已停用")
        if not timestamp.isdigit():
            return fail("10020", "timestamp格式错误")  # [assumed code]
        if abs(time.time() * 1000 - int(timestamp)) > options.timestamp_skew_s * 1000:
            return fail("10020", "timestamp已过期")  # [assumed code]
        expected = expected_signature(app_key, timestamp, options.app_secret)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return fail("10020", "签名校验失败")  # [assumed code]
        token = tokens.issue(options.token_ttl_s)
        return JSONResponse(
            {
                "code": "00000",
                "message": "成功！",
                "data": {"access_token": token, "expire": options.token_ttl_s},
            }
        )

    async def read_json(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise YonyouError("999", "请求体不是合法的JSON") from None
        if not isinstance(body, dict):
            raise YonyouError("999", "请求体必须是JSON对象")
        return body

    async def save_payload(request: Request) -> dict[str, Any]:
        body = await read_json(request)
        data = body.get("data")
        if not isinstance(data, dict):
            raise YonyouError("999", "请求参数data不能为空")
        return data

    async def merchant_newlist(request: Request, path: str) -> Response:
        body = await read_json(request)
        rows = store.customer_list(body, options.max_customer_page)
        if not rows and options.empty_customer_code:
            return fail(options.empty_customer_code, "根据条件查询结果为空")
        return ok(rows)

    async def merchant_detail(request: Request, path: str) -> Response:
        return ok(store.customer_detail(request.query_params.get("id")))

    async def merchant_save(request: Request, path: str) -> Response:
        return ok(store.customer_save(await save_payload(request), path).data)

    async def order_save(request: Request, path: str) -> Response:
        return ok(store.order_save(await save_payload(request), path).data)

    async def order_list(request: Request, path: str) -> Response:
        page = store.order_list(await read_json(request), options.max_order_page)
        return ok(page if options.ref_codes else {**page, "recordList": [_no_codes(r) for r in page["recordList"]]})

    async def order_detail(request: Request, path: str) -> Response:
        row = store.order_detail(request.query_params.get("id"))
        return ok(row if options.ref_codes else _no_codes(row))

    async def receipt_save(request: Request, path: str) -> Response:
        return ok(store.receipt_save(await save_payload(request), path).data)

    async def receipt_list(request: Request, path: str) -> Response:
        return ok(store.receipt_list(await read_json(request), options.max_order_page))

    async def receipt_detail(request: Request, path: str) -> Response:
        return ok(store.receipt_detail(request.query_params.get("id")))

    receipt = options.receipt_path.rstrip("/")
    handlers: dict[tuple[str, str], Handler] = {
        ("POST", "/yonbip/digitalModel/merchant/newlist"): merchant_newlist,
        ("GET", "/yonbip/digitalModel/merchant/detail"): merchant_detail,
        ("POST", "/yonbip/digitalModel/merchant/save"): merchant_save,
        ("POST", "/yonbip/sd/voucherorder/singleSave"): order_save,
        ("POST", "/yonbip/sd/voucherorder/list"): order_list,
        ("GET", "/yonbip/sd/voucherorder/detail"): order_detail,
        ("POST", receipt + "/singleSave"): receipt_save,
        ("POST", receipt + "/list"): receipt_list,
        ("GET", receipt + "/detail"): receipt_detail,
    }

    async def gateway(request: Request) -> Response:
        path = "/" + request.path_params["path"]
        token = request.query_params.get("access_token", "")
        if not token:
            return fail("310001", "access_token为空")
        if faults.take_session_expiry(request.url.path):
            tokens.revoke(token)  # an expired token stays expired
        if not tokens.valid(token):
            return fail("310036", "非法token")
        handler = handlers.get((request.method, path))
        if handler is None:
            return fail("310404", f"API[{path}]未注册", status=404)
        if limiter is not None:
            wait = limiter.hit(options.app_key)
            if wait is not None:
                # [assumed] the vendor's throttle answer is not documented
                return fail(
                    "429",
                    "API调用频率超限",
                    status=429,
                    headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                )
        try:
            return await handler(request, request.url.path)
        except YonyouError as exc:
            return fail(exc.code, exc.message)

    routes = [
        Route("/open-auth/dataCenter/getGatewayAddress", gateway_address, methods=["GET"]),
        *[Route(AUTH_PREFIX + p, access_token, methods=["GET"]) for p in TOKEN_PATHS],
        Route(GATEWAY_PREFIX + "/{path:path}", gateway, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.token_requests = token_requests
    return app
