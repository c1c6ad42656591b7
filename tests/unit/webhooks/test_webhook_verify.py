"""Signature checks for Jiandaoyun and generic HMAC pushes, and the event envelope."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from erphub.connectors.jiandaoyun import JiandaoyunConnector, check_jiandaoyun
from erphub.connectors.webhooks import Verdict, check_hmac, verify_hmac
from erphub.core.errors import PayloadError
from erphub.webhooks.envelope import parse_event

SECRET = "jdy-secret-for-tests"
NOW = 1_780_000_000.0
BODY = json.dumps({"op": "data_update", "data": {"_id": "r1", "customer_name": "华为"}},
                  ensure_ascii=False).encode("utf-8")


def jdy_sign(body: bytes, secret: str, timestamp: str, nonce: str) -> str:
    # Written out again from shared/reference/jiandaoyun.md, independently of the code under test.
    return hashlib.sha1(f"{nonce}:{body.decode()}:{secret}:{timestamp}".encode()).hexdigest()


def jdy(body: bytes = BODY, *, secret: str = SECRET, timestamp: float = NOW, nonce: str = "n0nce1",
        signature: str | None = None, deliver: str = "d-1", now: float = NOW, max_age: float = 300):
    ts = str(int(timestamp))
    sig = signature if signature is not None else jdy_sign(body, SECRET, ts, nonce)
    headers = {"x-jdy-signature": sig, "x-jdy-deliverid": deliver}
    query = {"timestamp": ts, "nonce": nonce}
    return check_jiandaoyun(body, query, headers, secret, now=now, max_age_s=max_age)


def test_jiandaoyun_good_signature_passes_with_nonce_and_delivery_id() -> None:
    checked = jdy()
    assert checked.verdict is Verdict.OK
    assert (checked.nonce, checked.deliver_id, checked.timestamp) == ("n0nce1", "d-1", NOW)


def test_jiandaoyun_signature_is_case_insensitive_hex() -> None:
    ts = str(int(NOW))
    assert jdy(signature=jdy_sign(BODY, SECRET, ts, "n0nce1").upper()).verdict is Verdict.OK


@pytest.mark.parametrize("change", ["secret", "body", "nonce", "signature", "empty"])
def test_jiandaoyun_any_change_breaks_the_signature(change: str) -> None:
    ts = str(int(NOW))
    if change == "secret":
        checked = jdy(secret="another-secret")
    elif change == "body":
        checked = check_jiandaoyun(BODY.replace(b"r1", b"r2"), {"timestamp": ts, "nonce": "n0nce1"},
                                   {"x-jdy-signature": jdy_sign(BODY, SECRET, ts, "n0nce1")}, SECRET,
                                   now=NOW, max_age_s=300)
    elif change == "nonce":
        checked = check_jiandaoyun(BODY, {"timestamp": ts, "nonce": "other"},
                                   {"x-jdy-signature": jdy_sign(BODY, SECRET, ts, "n0nce1")}, SECRET,
                                   now=NOW, max_age_s=300)
    elif change == "signature":
        checked = jdy(signature="0" * 40)
    else:
        checked = jdy(signature="")
    assert checked.verdict is Verdict.BAD_SIGNATURE


def test_jiandaoyun_missing_query_is_a_bad_signature() -> None:
    checked = check_jiandaoyun(BODY, {}, {"x-jdy-signature": "ab"}, SECRET, now=NOW, max_age_s=300)
    assert checked.verdict is Verdict.BAD_SIGNATURE


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_jiandaoyun_timestamp_outside_the_window_is_stale(offset: float) -> None:
    assert jdy(timestamp=NOW + offset).verdict is Verdict.STALE


def test_jiandaoyun_timestamp_at_the_edge_is_fresh() -> None:
    assert jdy(timestamp=NOW - 300).verdict is Verdict.OK


def test_jiandaoyun_millisecond_timestamp_is_understood() -> None:
    ts = str(int(NOW * 1000))
    sig = jdy_sign(BODY, SECRET, ts, "n")
    checked = check_jiandaoyun(BODY, {"timestamp": ts, "nonce": "n"}, {"x-jdy-signature": sig}, SECRET,
                               now=NOW + 5, max_age_s=300)
    assert checked.verdict is Verdict.OK


def test_stale_is_judged_only_after_the_signature() -> None:
    # An unsigned old request is a bad signature: strangers do not learn that the timestamp was the issue.
    assert jdy(timestamp=NOW - 9999, signature="f" * 40).verdict is Verdict.BAD_SIGNATURE


def hmac_headers(body: bytes, timestamp: float, *, secret: str = SECRET, prefix: str = "") -> dict[str, str]:
    ts = str(int(timestamp))
    sig = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"x-timestamp": ts, "x-signature": prefix + sig, "x-delivery-id": "h-1"}


@pytest.mark.parametrize("prefix", ["", "sha256="])
def test_hmac_good_signature(prefix: str) -> None:
    checked = check_hmac(BODY, hmac_headers(BODY, NOW, prefix=prefix), SECRET, signature_header="X-Signature",
                         now=NOW, max_age_s=60)
    assert checked.verdict is Verdict.OK and checked.deliver_id == "h-1" and checked.nonce.startswith("sig:")


def test_hmac_wrong_secret_tampered_body_and_stale() -> None:
    good = hmac_headers(BODY, NOW)
    assert check_hmac(BODY, hmac_headers(BODY, NOW, secret="x"), SECRET, signature_header="X-Signature",
                      now=NOW, max_age_s=60).verdict is Verdict.BAD_SIGNATURE
    assert check_hmac(BODY + b" ", good, SECRET, signature_header="X-Signature", now=NOW,
                      max_age_s=60).verdict is Verdict.BAD_SIGNATURE
    # The timestamp is signed: changing only the header breaks the signature.
    moved = {**good, "x-timestamp": str(int(NOW) + 1)}
    assert check_hmac(BODY, moved, SECRET, signature_header="X-Signature", now=NOW,
                      max_age_s=60).verdict is Verdict.BAD_SIGNATURE
    assert check_hmac(BODY, hmac_headers(BODY, NOW - 61), SECRET, signature_header="X-Signature", now=NOW,
                      max_age_s=60).verdict is Verdict.STALE


def test_hmac_custom_header_name() -> None:
    headers = hmac_headers(BODY, NOW)
    headers["x-hub-sig"] = headers.pop("x-signature")
    assert check_hmac(BODY, headers, SECRET, signature_header="X-Hub-Sig", now=NOW,
                      max_age_s=60).verdict is Verdict.OK


@pytest.mark.parametrize("body, reason", [
    (b"not json", "body is not JSON"),
    (b"[1, 2]", "invalid envelope"),
    (b'{"data": {"_id": "1"}}', "op"),
    (b'{"op": "data_create"}', "data"),
    (b'{"op": "data_create", "data": []}', "data"),
    (b'{"op": "data_create", "data": {"name": "x"}}', "record id"),
    (b'{"op": "data_create", "data": {"_id": ""}}', "record id"),
])
def test_malformed_envelopes(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_event(body)


def test_malformed_message_never_quotes_a_value() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_event(b'{"op": "data_create", "data": "canary-7788"}')
    assert "canary-7788" not in str(caught.value)


def test_envelope_gives_record_id_and_update_time() -> None:
    event = parse_event(b'{"op": "data_update", "extra": 1,'
                        b' "data": {"_id": "abc", "updateTime": "2026-03-01T08:00:00.123Z"}}')

    assert event.record_id() == "abc"
    expected = datetime(2026, 3, 1, 8, 0, 0, 123000, tzinfo=UTC)
    assert event.updated_at(datetime(2000, 1, 1, tzinfo=UTC)) == expected
    with pytest.raises(PayloadError):
        parse_event(b'{"op": "x", "data": {"_id": "a", "updateTime": "yesterday"}}').updated_at(
            datetime(2000, 1, 1, tzinfo=UTC))


def test_the_connector_verifier_is_the_jiandaoyun_check() -> None:
    ts = str(int(NOW))
    checked = JiandaoyunConnector.verify_webhook(
        BODY, {"timestamp": ts, "nonce": "n0nce1"}, {"x-jdy-signature": jdy_sign(BODY, SECRET, ts, "n0nce1")},
        SECRET, now=NOW, max_age_s=300, options={"header": "X-Signature"})
    assert checked.verdict is Verdict.OK and checked.nonce == "n0nce1"


def test_the_hmac_verifier_takes_its_header_from_the_options() -> None:
    headers = hmac_headers(BODY, NOW)
    headers["x-hub-sig"] = headers.pop("x-signature")
    assert verify_hmac(BODY, {}, headers, SECRET, now=NOW, max_age_s=60,
                       options={"header": "X-Hub-Sig"}).verdict is Verdict.OK
    assert verify_hmac(BODY, {}, headers, SECRET, now=NOW, max_age_s=60, options={}).verdict is Verdict.BAD_SIGNATURE
