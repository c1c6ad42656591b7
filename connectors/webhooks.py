"""What a pushed event's signature check answers, and the generic `hmac` check every source may use.

Connectors that verify their vendor's own pushes (`SupportsWebhook.verify_webhook`) answer with the
same `Checked`, built from the helpers here. Pure functions: no I/O, no clock of their own.

Generic `hmac` sources (our own scheme, not a vendor's): the header named by the source's `header`
option (default `X-Signature`) holds hex HMAC-SHA256(secret, "{timestamp}." + raw body), optionally
prefixed `sha256=`, and `X-Timestamp` holds unix seconds. The timestamp is inside the signed text so
a captured request cannot be made fresh again by changing the header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

HMAC_KIND = "hmac"
HMAC_DEFAULT_HEADER = "X-Signature"
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
    nonce: str = ""  # replay key: the vendor's nonce, or the signature itself for hmac sources
    deliver_id: str = ""  # verified when OK; on a refusal the id the request claims, for the log only


class WebhookVerifier(Protocol):
    """The shape of `SupportsWebhook.verify_webhook` and of `verify_hmac`."""

    def __call__(self, body: bytes, query: Mapping[str, str], headers: Mapping[str, str], secret: str, *,
                 now: float, max_age_s: float, options: Mapping[str, Any]) -> Checked: ...


def same_signature(expected: str, given: str) -> bool:
    """Constant-time comparison of hex digests, case-insensitive."""
    return hmac.compare_digest(expected.lower().encode("ascii"),
                               given.strip().lower().encode("ascii", "replace"))


def parse_timestamp(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    # Seconds are documented; accept milliseconds too rather than refusing every push as stale.
    return number / 1000.0 if number > 1e11 else number


def fresh(timestamp: float, now: float, max_age_s: float) -> bool:
    # A timestamp far in the future is as suspect as an old one.
    return abs(now - timestamp) <= max_age_s


def hmac_signature(body: bytes, secret: str, timestamp: str) -> str:
    signed = timestamp.encode("ascii", "replace") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def check_hmac(body: bytes, headers: Mapping[str, str], secret: str, *, signature_header: str, now: float,
               max_age_s: float) -> Checked:
    timestamp_text = headers.get(HMAC_TIMESTAMP_HEADER, "").strip()
    given = headers.get(signature_header.lower(), "").strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256="):]
    claimed = next((headers[h].strip() for h in HMAC_DELIVERY_HEADERS if headers.get(h, "").strip()), "")
    if not (timestamp_text and given):
        return Checked(Verdict.BAD_SIGNATURE, deliver_id=claimed)  # claimed, unverified: for the log only
    expected = hmac_signature(body, secret, timestamp_text)
    if not same_signature(expected, given):
        return Checked(Verdict.BAD_SIGNATURE, deliver_id=claimed)
    timestamp = parse_timestamp(timestamp_text)
    if timestamp is None or not fresh(timestamp, now, max_age_s):
        return Checked(Verdict.STALE, timestamp=timestamp, deliver_id=claimed)
    deliver_id = claimed or f"sig:{expected}"
    # The signature is unique per (timestamp, body): the same signature twice is the same request again.
    return Checked(Verdict.OK, timestamp=timestamp, nonce=f"sig:{expected}", deliver_id=deliver_id)


def verify_hmac(body: bytes, query: Mapping[str, str], headers: Mapping[str, str], secret: str, *,
                now: float, max_age_s: float, options: Mapping[str, Any]) -> Checked:
    """`check_hmac` in the verifier shape; `options["header"]` names the signature header."""
    return check_hmac(body, headers, secret, signature_header=str(options.get("header") or HMAC_DEFAULT_HEADER),
                      now=now, max_age_s=max_age_s)
