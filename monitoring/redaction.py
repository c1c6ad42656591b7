"""Remove secrets from anything that leaves the process: log events, exception text, dead letters.

Three nets, applied together:
1. every registered secret value, verbatim and in the forms it takes on the wire (URL-encoded,
   base64, JSON-escaped);
2. credential-shaped text: ``Authorization:``/``Cookie:`` headers and ``Bearer``/``Basic``/
   ``Session``/``Token`` schemes followed by a token;
3. values of keys named like a credential (password, secret, token, api_key, app_secret,
   access_token, authorization, cookie, session ...), both in structures and in ``key=value`` /
   ``"key": "value"`` text.

Secrets are registered at runtime with `add_secrets` (the config loader knows them once it has
resolved ``${env:...}`` references); functions also accept extra secrets per call.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

from structlog.processors import format_exc_info

REDACTED = "[REDACTED]"

# Shorter values would shred ordinary text ("1", "abc") and are no secret worth the name.
MIN_SECRET_LENGTH = 4

# Key names whose value is a credential, wherever they appear (dict keys, query strings, JSON text).
_SENSITIVE_KEY = (
    r"(?:[a-z0-9]*[_.-])*"
    r"(?:password|passwd|pwd|secret|app[_-]?secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token"
    r"|api[_-]?key|apikey|app[_-]?key|authorization|auth|cookie|set[_-]?cookie|session|session[_-]?id|sessionid"
    r"|signature|private[_-]?key|credentials?)"
    r"(?:[_.-][a-z0-9]*)*"
)
_SENSITIVE_KEY_RE = re.compile(rf"^{_SENSITIVE_KEY}$", re.IGNORECASE)
# Keys that merely talk about credentials; their values are counts, flags or names, not secrets.
_HARMLESS_KEYS = frozenset({"auth_failures", "token_type", "session_expired", "auth_scheme"})

# "Authorization: Basic abc==" / "Cookie: a=b; c=d" up to the end of the line.
_HEADER_RE = re.compile(
    r"(?P<name>\b(?:proxy-)?authorization|\bcookie|\bset-cookie|\bx-api-key|\bx-auth-token"
    r"|\bkdservice-sessionid)(?P<sep>\s*[:=]\s*)(?P<value>[^\r\n]+)",
    re.IGNORECASE,
)
# "Bearer eyJ..." etc. The scheme words also occur in prose ("Session expired"), so the token must
# look like one (see _looks_like_token) before it is removed.
_SCHEME_RE = re.compile(r"\b(?P<scheme>Bearer|Basic|Session|Token|Digest)\s+(?P<token>[A-Za-z0-9._~+/=:-]+)")
_QUOTED_KV_RE = re.compile(
    rf"(?P<key>[\"']?\b{_SENSITIVE_KEY}\b[\"']?)(?P<sep>\s*[:=]\s*)(?P<q>[\"'])(?P<value>(?:\\.|(?!(?P=q)).)*)(?P=q)",
    re.IGNORECASE,
)
_BARE_KV_RE = re.compile(
    rf"(?P<key>\b{_SENSITIVE_KEY}\b)(?P<sep>=|:\s*)(?!\[REDACTED\])(?P<value>[^\s\"'&,;)}}\]]+)",
    re.IGNORECASE,
)

_lock = threading.Lock()
_registered: frozenset[str] = frozenset()


def add_secrets(*values: str | Iterable[str] | None) -> None:
    """Register secret values to remove from everything redacted from now on (thread-safe)."""
    global _registered
    new: set[str] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, str):
            new.add(value)
        else:
            new.update(v for v in value if isinstance(v, str))
    with _lock:
        _registered = _registered | frozenset(v for v in new if len(v) >= MIN_SECRET_LENGTH)


def clear_secrets() -> None:
    """Forget registered secrets (tests; a process re-reading its configuration)."""
    global _registered
    with _lock:
        _registered = frozenset()


def registered_secrets() -> frozenset[str]:
    return _registered


def is_sensitive_key(key: str) -> bool:
    return key.lower() not in _HARMLESS_KEYS and bool(_SENSITIVE_KEY_RE.match(key))


def _variants(secret: str) -> set[str]:
    """The forms a secret takes on the wire, so a URL or a Basic header cannot smuggle it out."""
    raw = secret.encode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
    for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = b64.decode()
        forms.add(text)
        forms.add(text.rstrip("="))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


@lru_cache(maxsize=64)
def _secret_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    forms: set[str] = set()
    for s in secrets:
        forms |= _variants(s)
    if not forms:
        return None
    # Longest first so a secret's encoded form wins over a shorter secret inside it.
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def _all_secrets(extra: Iterable[str] | None) -> frozenset[str]:
    if not extra:
        return _registered
    return _registered | frozenset(s for s in extra if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH)


def _looks_like_token(token: str) -> bool:
    if len(token) < 8:
        return False
    has_digit = any(c.isdigit() for c in token)
    has_symbol = any(c in "._~+/=:-" for c in token)
    mixed_case = any(c.isupper() for c in token[1:]) and any(c.islower() for c in token)
    return has_digit or has_symbol or mixed_case or len(token) >= 24


def _scheme_sub(m: re.Match[str]) -> str:
    if m.group("scheme").lower() == "bearer" or _looks_like_token(m.group("token")):
        return f"{m.group('scheme')} {REDACTED}"
    return m.group(0)


def _quoted_kv_sub(m: re.Match[str]) -> str:
    key = m.group("key").strip("\"'")
    if not is_sensitive_key(key):
        return m.group(0)
    q = m.group("q")
    return f"{m.group('key')}{m.group('sep')}{q}{REDACTED}{q}"


def _bare_kv_sub(m: re.Match[str]) -> str:
    if not is_sensitive_key(m.group("key")):
        return m.group(0)
    return f"{m.group('key')}{m.group('sep')}{REDACTED}"


def redact_secrets_only(text: str, secrets: Iterable[str] | None = None) -> str:
    """Remove only the secret values themselves. Safe on rendered JSON: it never touches syntax."""
    pattern = _secret_pattern(_all_secrets(secrets))
    return pattern.sub(REDACTED, text) if pattern is not None else text


def redact_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """Remove secret values, credential headers/schemes and credential-named values from text."""
    if not text:
        return text
    text = redact_secrets_only(text, secrets)
    text = _HEADER_RE.sub(lambda m: f"{m.group('name')}{m.group('sep')}{REDACTED}", text)
    text = _SCHEME_RE.sub(_scheme_sub, text)
    text = _QUOTED_KV_RE.sub(_quoted_kv_sub, text)
    return _BARE_KV_RE.sub(_bare_kv_sub, text)


_PLAIN_SCALARS = (bool, int, float, Decimal, datetime, date, time, type(None))


def redact_obj(obj: Any, secrets: Iterable[str] | None = None) -> Any:
    """A copy of *obj* with secrets removed: dicts, lists, tuples, sets, strings, bytes, exceptions.

    Values of credential-named keys become ``[REDACTED]`` (``None`` stays ``None``: "no password" is
    not a secret). Other objects are kept unless their text carries a secret, in which case the
    redacted text replaces them.
    """
    return _redact(obj, _all_secrets(secrets), 0)


def _redact(obj: Any, secrets: frozenset[str], depth: int) -> Any:
    if isinstance(obj, int | float | Decimal) and not isinstance(obj, bool):
        # A numeric secret (a PIN, an account-set id used as a password) logged as a number.
        pattern = _secret_pattern(secrets)
        return REDACTED if pattern is not None and pattern.search(str(obj)) else obj
    if isinstance(obj, _PLAIN_SCALARS):
        return obj
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    if depth > 50:  # cycles or absurd nesting: give up structure, keep safety
        return redact_text(repr(obj), secrets)
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            clean_key = redact_text(key, secrets) if isinstance(key, str) else key
            if isinstance(key, str) and is_sensitive_key(key) and value is not None:
                out[clean_key] = REDACTED
            else:
                out[clean_key] = _redact(value, secrets, depth + 1)
        return out
    if isinstance(obj, list | tuple | set | frozenset):
        items = [_redact(v, secrets, depth + 1) for v in obj]
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
            return type(obj)(*items)
        return type(obj)(items) if isinstance(obj, tuple | set | frozenset) else items
    if isinstance(obj, bytes | bytearray):
        return redact_text(bytes(obj).decode("utf-8", "replace"), secrets)
    if isinstance(obj, BaseException):
        return redact_text(f"{type(obj).__name__}: {obj}", secrets)
    text = repr(obj)
    cleaned = redact_text(text, secrets)
    return obj if cleaned == text else cleaned


class RedactProcessor:
    """structlog processor: removes secrets from every value of the event dict, keys included.

    Put it after ``format_exc_info`` so the rendered traceback (a string by then) is cleaned too.
    """

    def __init__(self, secrets: Iterable[str] | None = None) -> None:
        self._extra = frozenset(secrets or ())

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
        if event_dict.get("exc_info"):
            # A live exception would be rendered after us (with locals, by rich): render it now as
            # plain text so its message and traceback pass through the filter below.
            event_dict = dict(format_exc_info(logger, method_name, event_dict))
        secrets = _all_secrets(self._extra)
        out: dict[str, Any] = {}
        for key, value in event_dict.items():
            if key in ("_record", "_from_structlog"):  # ProcessorFormatter bookkeeping
                out[key] = value
            elif key != "event" and is_sensitive_key(key) and value is not None:
                out[key] = REDACTED
            else:
                out[redact_text(key, secrets)] = _redact(value, secrets, 0)
        return out
