"""Kingdee WebAPI authentication as the sandbox checks it: session logins and SDK 8.x signed headers.

Signed headers are verified exactly as `kingdee-cdp-webapi-sdk` 8.2.0 computes them
(`core/webapi_client.py` BuildHeader, `util/hmac_util.py`, `util/encode_util.py`), written out
here independently so the sandbox does not import the SDK:

- `X-Api-Signature` = base64(ascii(lowercase hex(HmacSHA256(key, msg)))) — the SDK base64-encodes
  the *hex text* of the digest, not the digest bytes; msg = "POST\\n" + quote(path) with "/" as
  "%2F" + "\\n\\nx-api-nonce:" + nonce + "\\nx-api-timestamp:" + ts + "\\n"; key = the AppId part
  after "_", base64-decoded, XORed with the SDK's fixed code (rot13 of 32 characters taken from
  `generate_code()` skipping its random digits), base64-encoded again, used as UTF-8 text;
- `X-Kd-Signature` = the same encoding of HmacSHA256(AppSecret, AppId + appData);
- `X-Kd-Appdata` = base64("acctId,userName,lcid,orgNum").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

# The SDK's default XOR code: '0054s397' 'p6234378' 'o09pn7q3' 'r5qropr7' (its random 9th
# characters are skipped by extend_byte_array), rot13-ed.
_SDK_XOR_SOURCE = "0054s397p6234378o09pn7q3r5qropr7"
SESSION_LOST = "会话信息已丢失，请重新登录"


def _rot13(text: str) -> str:
    out = []
    for ch in text:
        if "a" <= ch <= "z":
            out.append(chr((ord(ch) - 97 + 13) % 26 + 97))
        elif "A" <= ch <= "Z":
            out.append(chr((ord(ch) - 65 + 13) % 26 + 65))
        else:
            out.append(ch)
    return "".join(out)


_XOR_BYTES = _rot13(_SDK_XOR_SOURCE).encode("utf-8")
_B64_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def decode_app_secret(app_id_secret: str) -> str:
    """The SDK's DecodeAppSecret: '' unless 32 base64 characters without padding."""
    if len(app_id_secret) != 32:
        return ""
    if any(c not in _B64_CHARS for c in app_id_secret):
        return ""  # the SDK's decoder rejects '=' and anything outside the alphabet
    raw = base64.b64decode(app_id_secret)
    mixed = bytes(b ^ _XOR_BYTES[i] for i, b in enumerate(raw))
    return base64.b64encode(mixed).decode("ascii")


def sdk_hmac(content: str, key: str) -> str:
    """hmac_util.HmacSHA256: base64 of the lowercase hex digest text."""
    digest = hmac.new(key.encode("utf-8"), content.encode("utf-8"), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode("utf-8")).decode("ascii")


def signed_path(path: str) -> str:
    return quote(path, encoding="utf-8").replace("/", "%2F")


def api_signature(app_id: str, path: str, timestamp: str, nonce: str) -> str:
    parts = app_id.split("_")
    client_sec = decode_app_secret(parts[1]) if len(parts) == 2 else ""
    message = (
        "POST\n" + signed_path(path) + "\n\nx-api-nonce:" + nonce + "\nx-api-timestamp:" + timestamp + "\n"
    )
    return sdk_hmac(message, client_sec)


def app_data(acct_id: str, user: str, lcid: int | str, org_num: int | str) -> str:
    return base64.b64encode(f"{acct_id},{user},{lcid},{org_num}".encode()).decode("ascii")


def login_sign(acct_id: str, user: str, app_id: str, app_secret: str, timestamp: str) -> str:
    """LoginBySign: lowercase hex SHA256 of the ordinal-sorted concatenation of the five values."""
    parts = sorted([acct_id, user, app_id, app_secret, str(timestamp)])
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """The demo account set. App ids look like Kingdee's: '<clientId>_<32 base64 chars>'."""

    acct_id: str = "66b2a4c1e9d30f"
    username: str = "erphub"
    password: str = "Kd#Demo-2026"
    app_id: str = "281937_ZXJwaHViLWtkLXNhbmRib3gtYXBwLTAx"
    app_secret: str = "3f9c1e7a5b2d4c8e9a6f0b1d2c3e4f5a"
    lcid: int = 2052
    org_number: str = "100"

    def as_dict(self) -> dict[str, str]:
        return {
            "acct_id": self.acct_id,
            "username": self.username,
            "password": self.password,
            "app_id": self.app_id,
            "app_secret": self.app_secret,
            "lcid": str(self.lcid),
            "org_number": self.org_number,
        }


@dataclass
class Session:
    sid: str
    acct_id: str
    username: str
    lcid: int
    last_used: float


class SignatureError(Exception):
    """Signed headers present but wrong."""


class SessionBook:
    """Live sessions with an idle timeout (K/3 Cloud's own default is 20 minutes [assumed])."""

    def __init__(self, idle_timeout_s: float = 1200.0) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self.logins = 0

    def open(self, acct_id: str, username: str, lcid: int) -> Session:
        with self._lock:
            self.logins += 1
            session = Session(secrets.token_hex(16), acct_id, username, lcid, time.monotonic())
            self._sessions[session.sid] = session
            return session

    def touch(self, sid: str | None) -> Session | None:
        """The live session with this id (renewing its idle clock), or None when lost/expired."""
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.last_used > self.idle_timeout_s:
                del self._sessions[sid]
                return None
            session.last_used = now
            return session

    def drop(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def expire_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)


def verify_signed_headers(
    headers: dict[str, str], path: str, creds: Credentials, max_skew_s: float, now: float | None = None
) -> tuple[str, str, int]:
    """Check the SDK 8.x headers; return (acct_id, username, lcid) or raise SignatureError."""
    lower = {k.lower(): v for k, v in headers.items()}
    app_key = lower.get("x-kd-appkey", "")
    if app_key != creds.app_id:
        raise SignatureError("应用ID不存在或已失效")
    client_id = creds.app_id.split("_")[0]
    if lower.get("x-api-clientid") != client_id:
        raise SignatureError("X-Api-ClientID与应用ID不匹配")
    timestamp = lower.get("x-api-timestamp", "")
    nonce = lower.get("x-api-nonce", "")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("x-api-timestamp无效") from None
    now = time.time() if now is None else now
    if abs(now - ts) > max_skew_s:
        raise SignatureError("请求已过期，请校验客户端时间")
    expected = api_signature(creds.app_id, path, timestamp, nonce)
    if not hmac.compare_digest(lower.get("x-api-signature", ""), expected):
        raise SignatureError("X-Api-Signature签名验证失败")
    data_b64 = lower.get("x-kd-appdata", "")
    try:
        data = base64.b64decode(data_b64, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise SignatureError("X-Kd-Appdata格式不正确") from None
    kd_expected = sdk_hmac(creds.app_id + data, creds.app_secret)
    if not hmac.compare_digest(lower.get("x-kd-signature", ""), kd_expected):
        raise SignatureError("X-Kd-Signature签名验证失败")
    parts = data.split(",")
    if len(parts) != 4:
        raise SignatureError("X-Kd-Appdata格式不正确")
    acct_id, username, lcid, _org = parts
    if acct_id != creds.acct_id:
        raise SignatureError("Fail to verify thirty passport")
    if username != creds.username:
        raise SignatureError("用户不存在")
    try:
        return acct_id, username, int(lcid)
    except ValueError:
        return acct_id, username, creds.lcid
