"""The Salesforce REST API over HTTP: OAuth2 token endpoint, SOQL query paging, upsert by external id,
sObject collections, errors as arrays, the org's daily request allocation and `Sforce-Limit-Info`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from erphub.sandbox.faults import Faults
from erphub.sandbox.salesforce.soql import SoqlError
from erphub.sandbox.salesforce.store import ORG_ID, USER_ID, SalesforceOrg, SfRecordError, to_json_value

COLLECTION_LIMIT = 200


@dataclass
class SalesforceOptions:
    client_id: str = "sf_demo_client_id"
    client_secret: str = "sf_demo_client_secret"
    username: str = "integration@erphub.example"
    password: str = "sf_demo_password"  # password grant: password + security token, concatenated
    security_token: str = "sf_demo_token"
    refresh_token: str = "sf_demo_refresh_token"  # issued once by a web-server flow, kept in config
    session_ttl_s: float = 7200.0  # [unconf] org session timeout, 2 h by default
    daily_api_limit: int = 15000  # [unconf] edition dependent; 15,000 is Developer Edition
    default_batch_size: int = 2000  # [doc] query batches of up to 2,000 records
    min_batch_size: int = 200  # [doc] Sforce-Query-Options minimum (REST API guide); tests may lower it
    max_batch_size: int = 2000
    # [doc] Salesforce Help 000389067: an org runs at most 25 API calls that have taken 20 s or longer;
    # while it does, new calls are refused with REQUEST_LIMIT_EXCEEDED "ConcurrentRequests (Concurrent
    # API Requests) Limit exceeded". Tests lower both, and slow every data call by `request_time_s`
    # (server-side time, inside the call: a slow org, unlike the fault plan's latency before it).
    concurrent_long_requests: int = 25
    long_request_s: float = 20.0
    request_time_s: float = 0.0


def _version_at_least(version: str, minimum: float) -> bool:
    try:
        return float(version) >= minimum
    except ValueError:
        return True


def errors(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    fields: list[str] | None = None,
) -> JSONResponse:
    body: list[dict[str, Any]] = [{"message": message, "errorCode": code}]
    if fields is not None:
        body[0]["fields"] = fields
    return JSONResponse(body, status_code=status, headers=headers)


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}

    def issue(self, ttl_s: float) -> str:
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl_s
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
            if expires is None or expires <= time.monotonic():
                self._tokens.pop(token, None)
                return False
            return True

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()


class Allocation:
    """Rolling 24-hour org-wide API request allocation."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._calls: deque[float] = deque()

    def take(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._calls and self._calls[0] <= now - 86400:
                self._calls.popleft()
            if len(self._calls) >= self.limit:
                return False
            self._calls.append(now)
            return True

    def used(self) -> int:
        with self._lock:
            return len(self._calls)


class Locators:
    """Server-side query cursors behind `nextRecordsUrl` (a snapshot of the result)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0
        self._results: dict[str, list[dict[str, Any]]] = {}

    def open(self, records: list[dict[str, Any]]) -> str:
        with self._lock:
            self._n += 1
            locator = f"01g5g0000{self._n:09d}"
            self._results[locator] = records
            return locator

    def get(self, locator: str) -> list[dict[str, Any]] | None:
        with self._lock:
            return self._results.get(locator)


def build_app(
    org: SalesforceOrg, options: SalesforceOptions, faults: Faults, sessions: Sessions, allocation: Allocation
) -> Starlette:
    locators = Locators()

    def signature(identity: str, issued_at: str) -> str:
        digest = hmac.new(
            options.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
        ).digest()
        return base64.b64encode(digest).decode()

    async def token(request: Request) -> Response:
        # application/x-www-form-urlencoded, parsed here (no python-multipart dependency)
        pairs = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        form = dict(pairs) | {k: v for k, v in request.query_params.items() if k not in dict(pairs)}
        grant = str(form.get("grant_type", ""))

        def oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
            return JSONResponse({"error": error, "error_description": description}, status_code=status)

        if grant not in ("password", "client_credentials", "refresh_token"):
            return oauth_error("unsupported_grant_type", "grant type not supported")
        if form.get("client_id") != options.client_id:
            return oauth_error("invalid_client_id", "client identifier invalid")
        secret = form.get("client_secret")
        if (secret is not None or grant != "refresh_token") and secret != options.client_secret:
            return oauth_error("invalid_client", "invalid client credentials")
        if grant == "password" and (
            form.get("username") != options.username
            or form.get("password") != options.password + options.security_token
        ):
            return oauth_error("invalid_grant", "authentication failure")
        if grant == "refresh_token" and form.get("refresh_token") != options.refresh_token:
            return oauth_error("invalid_grant", "expired access/refresh token")
        base = str(request.base_url).rstrip("/")
        identity = f"{base}/id/{ORG_ID}/{USER_ID}"
        issued_at = str(int(time.time() * 1000))
        return JSONResponse(
            {
                "access_token": sessions.issue(options.session_ttl_s),
                "instance_url": base,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": signature(identity, issued_at),
            }
        )

    async def versions(request: Request) -> Response:
        return JSONResponse([{"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}])

    def limit_header() -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={allocation.used()}/{allocation.limit}"}

    running: dict[object, float] = {}  # data API calls in progress -> when each began (monotonic)

    def long_running(now: float) -> int:
        return sum(1 for began in running.values() if now - began >= options.long_request_s)

    async def data_api(request: Request) -> Response:
        version = request.path_params["version"]
        rest = request.path_params["rest"].strip("/")
        auth = request.headers.get("authorization", "")
        bearer = (
            auth[7:] if auth.lower().startswith("bearer ") else auth[6:] if auth.startswith("OAuth ") else ""
        )
        if faults.take_session_expiry(request.url.path):
            sessions.revoke(bearer)
        if not bearer or not sessions.valid(bearer):
            return errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        now = time.monotonic()
        if long_running(now) >= options.concurrent_long_requests:
            return errors(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                          limit_header())
        if not allocation.take():
            return errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", limit_header())
        call = object()
        running[call] = now
        try:
            response = await served(request, version, rest)
        finally:
            del running[call]
        response.headers.update(limit_header())
        return response

    async def served(request: Request, version: str, rest: str) -> Response:
        if options.request_time_s:
            await asyncio.sleep(options.request_time_s)
        try:
            return await dispatch(request, version, rest)
        except SoqlError as exc:
            return errors(400, exc.error_code, exc.message)
        except SfRecordError as exc:
            status = 404 if exc.status_code == "NOT_FOUND" else 400
            return errors(status, exc.status_code, exc.message, fields=exc.fields)

    async def body_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise SfRecordError(
                "JSON_PARSER_ERROR", "Unexpected character: was expecting a JSON value"
            ) from None

    def query_page(
        version: str, records: list[dict[str, Any]], locator: str | None, offset: int, batch: int
    ) -> JSONResponse:
        page = records[offset : offset + batch]
        done = offset + batch >= len(records)
        body: dict[str, Any] = {"totalSize": len(records), "done": done}
        if not done:
            if locator is None:
                locator = locators.open(records)
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + batch}"
        body["records"] = page
        return JSONResponse(body)

    def batch_size(request: Request) -> int:
        header = request.headers.get("sforce-query-options", "")
        m = re.search(r"batchSize\s*=\s*(\d+)", header)
        if not m:
            return options.default_batch_size
        return max(options.min_batch_size, min(options.max_batch_size, int(m.group(1))))

    async def dispatch(request: Request, version: str, rest: str) -> Response:
        parts = rest.split("/") if rest else []
        method = request.method
        path = request.url.path
        if parts and parts[0] in ("query", "queryAll") and method == "GET":
            if len(parts) == 1:
                soql = request.query_params.get("q")
                if not soql:
                    raise SoqlError("MALFORMED_QUERY", "Query string parameter 'q' is missing")
                records = org.run_query(soql, include_deleted=parts[0] == "queryAll")
                return query_page(version, records, None, 0, batch_size(request))
            m = re.fullmatch(r"(01g\w+)-(\d+)", parts[1])
            cached = locators.get(m.group(1)) if m else None
            if m is None or cached is None:
                return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return query_page(version, cached, m.group(1), int(m.group(2)), batch_size(request))
        if parts == ["limits"] and method == "GET":
            return JSONResponse(
                {
                    "DailyApiRequests": {
                        "Max": allocation.limit,
                        "Remaining": allocation.limit - allocation.used(),
                    }
                }
            )
        if parts == ["sobjects"] and method == "GET":
            return JSONResponse(org.global_describe())
        if parts[:1] == ["sobjects"] and len(parts) >= 2:
            sobject = parts[1]
            org.describe(sobject)
            if len(parts) == 3 and parts[2] == "describe" and method == "GET":
                return JSONResponse(org.describe_json(sobject))
            if len(parts) == 2 and method == "POST":
                body = await body_json(request)
                if not isinstance(body, dict):
                    raise SfRecordError("JSON_PARSER_ERROR", "Expecting a JSON object")
                new_id = org.create(sobject, body, path)
                return JSONResponse({"id": new_id, "success": True, "errors": []}, status_code=201)
            if len(parts) == 3:
                record_id = parts[2]
                if method == "GET":
                    return JSONResponse(record_json(sobject, org.get(sobject, record_id)))
                if method == "PATCH":
                    body = await body_json(request)
                    if not isinstance(body, dict):
                        raise SfRecordError("JSON_PARSER_ERROR", "Expecting a JSON object")
                    org.update(sobject, record_id, body, path)
                    return Response(status_code=204)
                if method == "DELETE":
                    org.delete(sobject, record_id)
                    return Response(status_code=204)
            if len(parts) == 4:
                ext_field, value = parts[2], parts[3]
                if method == "GET":
                    ids = org.by_external_id(sobject, ext_field, value)
                    if not ids:
                        raise SfRecordError("NOT_FOUND", "The requested resource does not exist")
                    if len(ids) > 1:
                        return JSONResponse([org.record_url(sobject, i) for i in ids], status_code=300)
                    return JSONResponse(record_json(sobject, org.get(sobject, ids[0])))
                if method == "PATCH":
                    body = await body_json(request)
                    if not isinstance(body, dict):
                        raise SfRecordError("JSON_PARSER_ERROR", "Expecting a JSON object")
                    outcome = org.upsert(sobject, ext_field, value, body, path)
                    if outcome.duplicates:
                        return JSONResponse(
                            [org.record_url(sobject, i) for i in outcome.duplicates], status_code=300
                        )
                    if outcome.error is not None:
                        raise outcome.error
                    result: dict[str, Any] = {
                        "id": outcome.id,
                        "success": True,
                        "errors": [],
                        "created": outcome.created,
                    }
                    if outcome.created:
                        return JSONResponse(result, status_code=201)
                    if _version_at_least(version, 46.0):
                        return JSONResponse(result, status_code=200)
                    return Response(status_code=204)
        if parts[:2] == ["composite", "sobjects"] and len(parts) == 4 and method == "PATCH":
            sobject, ext_field = parts[2], parts[3]
            org.describe(sobject)
            body = await body_json(request)
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                raise SfRecordError("JSON_PARSER_ERROR", "Expecting an object with a records array")
            records = body["records"]
            if len(records) > COLLECTION_LIMIT:
                return errors(
                    400,
                    "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than "
                    f"{COLLECTION_LIMIT} records into this call",
                )
            results = org.upsert_collection(sobject, ext_field, records, bool(body.get("allOrNone")), path)
            return JSONResponse(results)
        return errors(404, "NOT_FOUND", "The requested resource does not exist")

    def record_json(sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": org.record_url(sobject, record["Id"])}}
        out.update({k: to_json_value(v) for k, v in record.items()})
        return out

    routes = [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/data", versions, methods=["GET"]),
        Route("/services/data/", versions, methods=["GET"]),
        Route("/services/data/v{version}/{rest:path}", data_api, methods=["GET", "POST", "PATCH", "DELETE"]),
    ]
    return Starlette(routes=routes)
