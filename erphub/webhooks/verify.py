"""Signature checks for pushed events. Pure functions: no I/O, no clock of their own.

Jiandaoyun (shared/reference/jiandaoyun.md): the push carries `?timestamp=...&nonce=...` and the
header `X-JDY-Signature` = hex SHA-1 of the UTF-8 string "{nonce}:{body}:{secret}:{timestamp}",
body being the raw request body.

Generic `hmac` sources: the header named by the source's `header` (default `X-Signature`) holds
hex HMAC-SHA256(secret, "{timestamp}." + raw body), optionally prefixed `sha256=`, and
`X-Timestamp` holds unix seconds. The timestamp is inside the signed text so a captured request
cannot be made fresh again by changing the header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

JDY_SIGNATURE_HEADER = "x-jdy-signature"
JDY_DELIVER_HEADER = "x-jdy-deliverid"
HMAC_TIMESTAMP_HEADER = "x-timestamp"
HMAC_DELIVERY_HEADERS = ("x-delivery-id", "x-request-id")


class Verdict(StrEnum):
    OK = "ok"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of a signature check, with what the receiver needs next when it passed."""

    verdict: Verdict
    timestamp: float | None = None
    nonce: str = ""  # replay key: Jiandaoyun's nonce, or the signature itself for hmac sources
    deliver_id: str = ""


def jiandaoyun_signature(body: bytes, secret: str, timestamp: str, nonce: str) -> str:
    """Hex SHA-1 of "{nonce}:{body}:{secret}:{timestamp}" (how Jiandaoyun signs a push)."""
    text = f"{nonce}:{body.decode('utf-8')}:{secret}:{timestamp}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()  # the vendor's scheme, not our choice


def hmac_signature(body: bytes, secret: str, timestamp: str) -> str:
    signed = timestamp.encode("ascii", "replace") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.lower().encode("ascii"),
                               given.strip().lower().encode("ascii", "replace"))


def _parse_timestamp(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    # Seconds are documented; accept milliseconds too rather than refusing every push as stale.
    return number / 1000.0 if number > 1e11 else number


def _fresh(timestamp: float, now: float, max_age_s: float) -> bool:
    # A timestamp far in the future is as suspect as an old one.
    return abs(now - timestamp) <= max_age_s


def check_jiandaoyun(body: bytes, query: Mapping[str, str], headers: Mapping[str, str], secret: str,
                     *, now: float, max_age_s: float) -> Checked:
    timestamp_text = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    given = headers.get(JDY_SIGNATURE_HEADER, "")
    if not (timestamp_text and nonce and given):
        return Checked(Verdict.BAD_SIGNATURE)
    try:
        expected = jiandaoyun_signature(body, secret, timestamp_text, nonce)
    except UnicodeDecodeError:
        return Checked(Verdict.BAD_SIGNATURE)
    if not _same(expected, given):
        return Checked(Verdict.BAD_SIGNATURE)
    timestamp = _parse_timestamp(timestamp_text)
    if timestamp is None or not _fresh(timestamp, now, max_age_s):
        return Checked(Verdict.STALE, timestamp=timestamp, nonce=nonce)
    deliver_id = headers.get(JDY_DELIVER_HEADER, "").strip() or f"sig:{expected}"
    return Checked(Verdict.OK, timestamp=timestamp, nonce=nonce, deliver_id=deliver_id)


def check_hmac(body: bytes, headers: Mapping[str, str], secret: str, *, signature_header: str, now: float,
               max_age_s: float) -> Checked:
    timestamp_text = headers.get(HMAC_TIMESTAMP_HEADER, "").strip()
    given = headers.get(signature_header.lower(), "").strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256="):]
    if not (timestamp_text and given):
        return Checked(Verdict.BAD_SIGNATURE)
    expected = hmac_signature(body, secret, timestamp_text)
    if not _same(expected, given):
        return Checked(Verdict.BAD_SIGNATURE)
    timestamp = _parse_timestamp(timestamp_text)
    if timestamp is None or not _fresh(timestamp, now, max_age_s):
        return Checked(Verdict.STALE, timestamp=timestamp)
    deliver_id = next((headers[h].strip() for h in HMAC_DELIVERY_HEADERS if headers.get(h, "").strip()),
                      f"sig:{expected}")
    # The signature is unique per (timestamp, body): the same signature twice is the same request again.
    return Checked(Verdict.OK, timestamp=timestamp, nonce=f"sig:{expected}", deliver_id=deliver_id)
