"""Yonyou token signing, checked against values computed independently of the connector's code."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, quote

import httpx
import pytest
from pydantic import SecretStr

from erphub.connectors.yonyou import YonyouTokenAuth, resubmit_check_key, signature, token_query
from erphub.core.errors import AuthError

# Computed with:
#   echo -n "appKeyk-123timestamp1700000000000" | openssl dgst -sha256 -hmac 's3cr3t/+=' -binary | base64
OPENSSL_VECTOR = "n/7/sbnACc3Z/yF+lFt9vqbde8Pxa3A/ps5KKIggUZE="


def test_signature_matches_openssl_vector() -> None:
    assert signature("k-123", "s3cr3t/+=", 1700000000000) == OPENSSL_VECTOR


@pytest.mark.parametrize(
    "app_key,secret,ts",
    [("abc", "def", 1), ("应用", "秘钥", 1734567890123), ("k" * 64, "x/+=" * 8, 9999999999999)],
)
def test_signature_is_hmac_sha256_of_sorted_pairs(app_key: str, secret: str, ts: int) -> None:
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"appKey{app_key}timestamp{ts}".encode(), hashlib.sha256).digest()
    ).decode()
    assert signature(app_key, secret, ts) == expected


def test_query_encodes_the_signature_exactly_once() -> None:
    query = token_query("k-123", "s3cr3t/+=", 1700000000000)
    raw = dict(part.split("=", 1) for part in query.split("&"))
    assert raw["signature"] == quote(OPENSSL_VECTOR, safe="")
    assert "+" not in raw["signature"] and "/" not in raw["signature"]
    # A server that decodes the query once gets the Base64 text back.
    assert parse_qs(query)["signature"] == [OPENSSL_VECTOR]
    assert raw["timestamp"] == "1700000000000" and raw["appKey"] == "k-123"


def test_token_fetch_sends_signed_query_and_puts_token_in_business_calls() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("getGatewayAddress"):
            return httpx.Response(
                200,
                json={
                    "code": "00000",
                    "data": {
                        "gatewayUrl": "http://gw.test/iuap-api-gateway",
                        "tokenUrl": "http://auth.test/iuap-api-auth",
                    },
                },
            )
        if request.url.path.endswith("getAccessToken"):
            return httpx.Response(
                200, json={"code": "00000", "data": {"access_token": "tok/1+", "expire": 7200}}
            )
        return httpx.Response(200, json={"code": "200", "data": []})

    auth = YonyouTokenAuth(
        tenant_id="t1",
        app_key="k-123",
        app_secret=SecretStr("s3cr3t/+="),
        discovery_url="http://discovery.test",
        wall_clock_ms=lambda: 1700000000000,
    )
    with httpx.Client(base_url="http://discovery.test", transport=httpx.MockTransport(handler)) as client:
        auth.ensure(client)
        request = client.build_request("POST", "/yonbip/digitalModel/merchant/newlist", json={})
        auth.apply(request)
    discovery, token = seen
    assert discovery.url.params["tenantId"] == "t1"
    assert token.url.host == "auth.test"
    assert token.url.path == "/iuap-api-auth/open-auth/selfAppAuth/base/v1/getAccessToken"
    assert f"signature={quote(OPENSSL_VECTOR, safe='')}" in token.url.query.decode()
    assert str(request.url).startswith(
        "http://gw.test/iuap-api-gateway/yonbip/digitalModel/merchant/newlist?"
    )
    assert request.url.params["access_token"] == "tok/1+"
    assert request.headers["Host"] == "gw.test"
    assert auth.leeway_s == 60.0


def test_refused_signature_is_an_auth_error_without_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": "10020", "message": "签名校验失败"})

    auth = YonyouTokenAuth(
        tenant_id="t1",
        app_key="k",
        app_secret=SecretStr("topsecret"),
        discovery_url="http://d.test",
        gateway_url="http://gw.test",
        token_url="http://a.test",
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as client, pytest.raises(AuthError) as err:
        auth.ensure(client)
    assert "topsecret" not in str(err.value)
    assert "topsecret" in auth.secret_values()


def test_resubmit_check_key_is_stable_and_at_most_32_chars() -> None:
    key = resubmit_check_key("pipeline:rec-1:abcdef")
    assert key == hashlib.sha256(b"pipeline:rec-1:abcdef").hexdigest()[:32]
    assert len(key) == 32
    assert resubmit_check_key("pipeline:rec-2:abcdef") != key
