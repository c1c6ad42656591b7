"""Contract harness for the tryton connector against a REAL trytond 8.2 (SQLite, 127.0.0.1).

The server runs from a private copy of the template DB (`tests/tryton_server.py`; the first run
installs `.venv-tryton` and builds the template). Entity under test: `customer` (party.party,
key `code`).

Capabilities:
- expire_auth: the session is deleted on the server with `common.db.logout` (the same token),
  so the connector's next call gets HTTP 401 and must log in again by itself;
- lost_response: a transport in front of the real server delivers the next create/write call
  and then raises ReadTimeout instead of returning Tryton's answer (the server did apply it);
- rate_limit: that transport records when each request leaves for the server. trytond itself
  logs requests only with whole-second timestamps, too coarse to measure a rate, so these times
  stand in for the server's arrival times (loopback, one synchronous client: the same order
  and spacing to within the network's sub-millisecond jitter);
- log_secrets: the admin password is a configured secret.
Seeding sets `create_date`/`write_date` directly in the SQLite file (trytond keeps no cache of
them between requests), which is how many records get one shared timestamp.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from erphub.connectors.base import Connector, SystemContext
from erphub.connectors.tryton import TrytonConnector, TrytonSettings, codec
from erphub.core.records import WriteRequest
from erphub.testing import EXPIRE_AUTH, LOG_SECRETS, LOST_RESPONSE, RATE_LIMIT
from tests.tryton_server import TrytonServer, tryton_server

JSON = {"Content-Type": "application/json"}
WRITE_METHODS = (".create", ".write", ".delete")


class RecordingTransport(httpx.BaseTransport):
    """Forwards to the real server; records send times; can swallow the next write's answer."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.times: list[float] = []
        self.lose_next_write = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.times.append(time.monotonic())
        response = self._inner.handle_request(request)
        method = _rpc_method(request)
        if self.lose_next_write and method.endswith(WRITE_METHODS):
            self.lose_next_write = False
            response.read()  # the server has committed; its answer never reaches the client
            response.close()
            raise httpx.ReadTimeout("answer lost (contract harness)", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


def _rpc_method(request: httpx.Request) -> str:
    try:
        return str(json.loads(request.content).get("method", ""))
    except (ValueError, AttributeError):
        return ""


class TrytonHarness:
    kind = "tryton"
    entity = "customer"
    capabilities = frozenset({EXPIRE_AUTH, LOST_RESPONSE, RATE_LIMIT, LOG_SECRETS})
    capability_reasons: ClassVar[dict[str, str]] = {
        "discovery": "the connector moves only its documented party shape: Tryton custom fields come from "
                     "modules, not per-database configuration (fields_get discovery: test_tryton_connector.py)",
        "line_identity": "a draft or quoted sale's lines are replaced on update (a quotation goes back to draft "
                         "through Tryton's workflow and is quoted again; no shipment or invoice refers to its "
                         "lines before confirmation) and a confirmed sale is locked (test_tryton_applied.py), "
                         "so there are no line ids to keep",
    }

    def __init__(self, server: TrytonServer) -> None:
        self.server = server
        self.secret_values: Sequence[str] = (server.password,)
        self.transport = RecordingTransport()
        self._connectors: list[TrytonConnector] = []
        self._admin: tuple[httpx.Client, dict[str, str], dict[str, Any]] | None = None
        self._admin_client: httpx.Client | None = None

    def settings(self, **overrides: Any) -> TrytonSettings:
        values: dict[str, Any] = {
            "url": self.server.url,
            "database": self.server.database,
            "login": self.server.login,
            "password": SecretStr(self.server.password),
            "default_payment_term": "Direct",
        }
        values.update(overrides)
        return TrytonSettings(**values)

    def connector(self, *, rate_limit_per_second: float | None = None, **overrides: Any) -> Connector:
        context = SystemContext(
            name="tryton",
            rate_limit_per_second=rate_limit_per_second,
            secrets=(self.server.password,),
            transport=self.transport,
            read_timeout_s=30.0,
            max_attempts=3,
            max_retry_seconds=10.0,
        )
        conn = TrytonConnector(self.settings(**overrides), context)
        self._connectors.append(conn)
        return conn

    # -- server-side helpers ---------------------------------------------------------------
    def admin_call(self, method: str, params: list[Any], *, context: dict[str, Any] | None = None) -> Any:
        """One call as admin on the harness's own session (server-side truth, not the connector's view).

        The user context (plus `context`) is appended as the last parameter, as Tryton requires.
        """
        if self._admin is None:
            self._admin = self._admin_login()
        client, auth, ctx = self._admin
        body = {"id": 1, "method": method, "params": [*params, {**ctx, **(context or {})}]}
        response = client.post(f"/{self.server.database}/rpc/", content=codec.dumps(body), headers=auth)
        if response.status_code == 401:  # the admin session expired (300 s idle): log in again
            self._admin = None
            return self.admin_call(method, params, context=context)
        reply = codec.loads(response.content)
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def _admin_login(self) -> tuple[httpx.Client, dict[str, str], dict[str, Any]]:
        client = self._admin_client or httpx.Client(base_url=self.server.url, timeout=30, headers=JSON)
        self._admin_client = client
        url = f"/{self.server.database}/rpc/"
        login = {"id": 1, "method": "common.db.login",
                 "params": [self.server.login, {"password": self.server.password}, "en"]}
        uid, token = codec.loads(client.post(url, content=codec.dumps(login)).content)["result"][:2]
        session = base64.b64encode(f"{self.server.login}:{uid}:{token}".encode()).decode()
        auth = {"Authorization": f"Session {session}"}
        prefs = {"id": 2, "method": "model.res.user.get_preferences", "params": [True, {}]}
        ctx = codec.loads(client.post(url, content=codec.dumps(prefs), headers=auth).content)["result"]
        return client, auth, {k: v for k, v in ctx.items() if "." not in k and k != "locale"}

    def close(self) -> None:
        self.transport.close()
        if self._admin_client is not None:
            self._admin_client.close()

    def set_timestamps(self, model_table: str, ids: Sequence[int], stamp: dt.datetime) -> None:
        value = stamp.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
        with sqlite3.connect(self.server.db_file, timeout=30) as con:
            con.executemany(
                f"UPDATE {model_table} SET create_date = ?, write_date = ? WHERE id = ?",
                [(value, value, i) for i in ids],
            )

    # -- ContractHarness -------------------------------------------------------------------
    def seed(self, count: int, *, updated_at: dt.datetime) -> list[str]:
        tag = uuid.uuid4().hex[:8].upper()
        values = [{"code": f"SEED-{tag}-{n:04d}", "name": f"Seeded {tag} {n}"} for n in range(count)]
        ids = [int(i) for i in self.admin_call("model.party.party.create", [values])]
        self.set_timestamps("party_party", ids, updated_at)
        return [str(i) for i in ids]

    def write_request(self, n: int, *, key: str, target_id: str | None = None) -> WriteRequest:
        data = {
            "code": key,
            "name": f"Contract Customer {n}",
            "phone": f"+86 21 6000 {n:04d}",
            "email": f"c{n}@example.com",
            "street": f"{n} Nanjing Road",
            "city": "Shanghai",
            "postal_code": "200000",
            "country": "CN",
        }
        return WriteRequest(source_id=f"src-{n}", key=key, target_id=target_id, data=data, idempotency_key=f"{key}:{n}")

    def bad_write_request(self, n: int, *, key: str) -> WriteRequest:
        # Tryton checks a cn_vat (USCC) identifier's check character server-side (python-stdnum): a
        # UserError for this record alone, which the connector must isolate from its batch.
        data = {"code": key, "name": f"Bad Customer {n}", "tax_identifier": "91310000MA1FL0XX1X"}
        return WriteRequest(source_id=f"src-{n}", key=key, target_id=None, data=data, idempotency_key=f"{key}:{n}:bad")

    def count_with_key(self, key: str) -> int:
        return int(self.admin_call("model.party.party.search_count", [[["code", "=", key]], 0, None]))

    def expire_auth(self) -> None:
        for conn in self._connectors:
            header = conn.rpc.session.authorization()
            if header is None:
                continue
            with httpx.Client(base_url=self.server.url, timeout=30, headers=JSON) as client:
                client.post(
                    f"/{self.server.database}/rpc/",
                    content=codec.dumps({"id": 1, "method": "common.db.logout", "params": []}),
                    headers={"Authorization": header},
                )

    def lose_next_write_response(self) -> None:
        self.transport.lose_next_write = True

    def request_times(self) -> list[float]:
        return list(self.transport.times)

    def page_size_hint(self) -> int:
        return 5

    def extra(self) -> dict[str, Any]:
        return {"url": self.server.url, "meta": self.server.meta}


@contextmanager
def make_harness() -> Iterator[TrytonHarness]:
    with tryton_server() as server:
        harness = TrytonHarness(server)
        try:
            yield harness
        finally:
            harness.close()
