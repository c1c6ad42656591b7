"""Kingdee session login (ValidateUser / LoginByAppSecret / LoginBySign) and answer classification.

The session travels as the `kdservice-sessionid` cookie and header. Kingdee says "session lost"
with HTTP 200 and ResponseStatus MsgCode 1 (`会话信息已丢失，请重新登录`), and "call limit" with
MsgCode 14; both are recognised here so the shared client re-logs in / backs off.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from erphub.connectors.auth import SessionAuth, check_login_response, reveal
from erphub.connectors.http import Action, Verdict
from erphub.connectors.kingdee.query import find_status, is_success, status_message
from erphub.core.errors import AuthError, ProtocolError

AUTH_STUB = "Kingdee.BOS.WebApi.ServicesStub.AuthService."
SID = "kdservice-sessionid"
MSG_SESSION_LOST = 1
MSG_CALL_LIMIT = 14


def login_sign(acct_id: str, user: str, app_id: str, app_secret: str, timestamp: str) -> str:
    """LoginBySign: lowercase hex SHA256 of the ordinal-sorted concatenation of the five values."""
    return hashlib.sha256(
        "".join(sorted([acct_id, user, app_id, app_secret, timestamp])).encode()
    ).hexdigest()


class KingdeeLogin(SessionAuth):
    """One of the three session logins; re-run whenever the server says the context is lost."""

    def __init__(
        self,
        *,
        mode: str,
        acct_id: str,
        username: str,
        lcid: int,
        password: SecretStr | None = None,
        app_id: str | None = None,
        app_secret: SecretStr | None = None,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_age_s=max_age_s)
        self.mode = mode
        self.acct_id = acct_id
        self.username = username
        self.lcid = lcid
        self._password = password
        self.app_id = app_id or ""
        self._app_secret = app_secret
        self._wall_clock = clock

    def _call(self) -> tuple[str, list[Any]]:
        if self.mode == "password":
            return "ValidateUser", [self.acct_id, self.username, reveal(self._password), self.lcid]
        if self.mode == "app_secret":
            return "LoginByAppSecret", [
                self.acct_id,
                self.username,
                self.app_id,
                reveal(self._app_secret),
                self.lcid,
            ]
        timestamp = str(int(self._wall_clock()))
        sign = login_sign(self.acct_id, self.username, self.app_id, reveal(self._app_secret), timestamp)
        return "LoginBySign", [self.acct_id, self.username, self.app_id, timestamp, sign, self.lcid]

    def login(self, client: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
        method, parameters = self._call()
        request = client.build_request(
            "POST", f"{AUTH_STUB}{method}.common.kdsvc", json={"parameters": parameters}
        )
        response = client.send(request)
        body = check_login_response(response, f"Kingdee {method}")
        if not isinstance(body, dict):
            raise ProtocolError(f"Kingdee {method} answered something that is not a LoginResult")
        # LoginResultType 1 = success; one client also accepts -5 (password policy warning).
        if body.get("LoginResultType") not in (1, -5):
            message = str(body.get("Message") or "login refused")[:200]
            raise AuthError(f"Kingdee {method} refused: {message}")
        sid = body.get("KDSVCSessionId") or response.cookies.get(SID)
        if not sid:
            raise ProtocolError(f"Kingdee {method} succeeded but returned no session id")
        cookies = {SID: str(sid)}
        asp = response.cookies.get("ASP.NET_SessionId")
        if asp:
            cookies["ASP.NET_SessionId"] = asp
        # The session is carried explicitly; keep httpx's jar from also replaying stale cookies.
        client.cookies.clear()
        return {SID: str(sid)}, cookies

    def is_expired_response(self, response: httpx.Response, body: Any) -> bool:
        status = find_status(body)
        return status is not None and not is_success(status) and status.get("MsgCode") == MSG_SESSION_LOST

    def secret_values(self) -> list[str]:
        values = [*super().secret_values(), reveal(self._password), reveal(self._app_secret)]
        return [v for v in values if v]


def classify_body(response: httpx.Response, body: Any) -> Verdict | None:
    """MsgCode 14 means "slow down"; an SDK-style `response_error:` text is a failure."""
    if isinstance(body, str) and body.startswith("response_error:"):
        return Verdict(Action.FAIL, "response_error", body[len("response_error:") :].strip()[:300])
    status = find_status(body)
    if status is None or is_success(status):
        return None
    if status.get("MsgCode") == MSG_CALL_LIMIT:
        return Verdict(Action.RATE_LIMITED, "MsgCode 14", status_message(status))
    return None
