"""Pure parts of the Kingdee connector and sandbox: filters, regrouping rows, envelopes, signatures."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from k3cloud_webapi_sdk.core.webapi_client import WebApiClient
from k3cloud_webapi_sdk.model.api_config import ApiConfig
from k3cloud_webapi_sdk.util import encode_util, hmac_util

from erphub.connectors.http import Action
from erphub.connectors.kingdee.auth import KingdeeLogin, classify_body
from erphub.connectors.kingdee.auth import login_sign as client_login_sign
from erphub.connectors.kingdee.query import (
    build_record,
    change_time,
    changed_since_filter,
    complete_groups,
    find_status,
    in_filter,
    is_success,
    kd_literal,
    parse_kd_datetime,
)
from erphub.connectors.kingdee.schema import CUSTOMER, SALES_ORDER
from erphub.connectors.kingdee.settings import KingdeeSettings
from erphub.core.errors import ProtocolError
from erphub.core.records import Cursor
from erphub.sandbox.kingdee.auth import (
    Credentials,
    SignatureError,
    api_signature,
    decode_app_secret,
    sdk_hmac,
    verify_signed_headers,
)
from erphub.sandbox.kingdee.auth import login_sign as server_login_sign


def test_kingdee_local_time_round_trip() -> None:
    moment = parse_kd_datetime("2026-03-01T10:30:00.537")
    assert moment == datetime(2026, 3, 1, 2, 30, 0, 537000, tzinfo=UTC)
    assert kd_literal(moment) == "2026-03-01 10:30:00.537"
    assert parse_kd_datetime("2026-03-01T10:30:00.5") == datetime(2026, 3, 1, 2, 30, 0, 500000, tzinfo=UTC)
    assert parse_kd_datetime("2026-03-01") == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)


def test_change_time_is_the_latest_of_modify_and_state_dates() -> None:
    since = Cursor(datetime(2026, 3, 1, 2, 30, tzinfo=UTC), "100042")
    assert changed_since_filter("FApproveDate", since) == "FApproveDate >= '2026-03-01 10:30:00.000'"
    assert changed_since_filter("FModifyDate", None) == ""
    assert CUSTOMER.stamp_keys() == ("FModifyDate", "FApproveDate", "FForbidDate")
    # Audited an hour after the last save: the audit is the change time; no state date yet: the save.
    assert change_time(CUSTOMER, ["2026-03-01T10:30:00", "2026-03-01T11:30:00", None], 1) == \
        datetime(2026, 3, 1, 3, 30, tzinfo=UTC)
    assert change_time(CUSTOMER, ["2026-03-01T10:30:00", None, ""], 1) == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    with pytest.raises(ProtocolError):
        change_time(CUSTOMER, [None, "2026-03-01T11:30:00", None], 1)


def test_in_filter_escapes_quotes() -> None:
    assert in_filter("FNumber", ["A'1", "B"]) == "FNumber in ('A''1','B')"


SO_KEYS = SALES_ORDER.field_keys()


def so_row(fid: int, entry_id: int | None, qty: float = 1.0, modified: str = "2026-03-01T10:00:00") -> list:
    by_key = {
        "FID": fid, "FBillNo": f"SO-{fid}", "FBillTypeID.FNUMBER": "XSDD01_SYS", "FDate": "2026-03-01T00:00:00",
        "FSaleOrgId.FNumber": "100", "FCustId.FNumber": "CUS-000001", "FSalerId.FNumber": "S001", "FNote": None,
        "FDocumentStatus": "A", "FModifyDate": modified, "FSettleCurrId.FNumber": "PRE001",
        "FSaleOrderEntry_FEntryID": entry_id, "FMaterialId.FNumber": "1.01.001" if entry_id else None,
        "FUnitID.FNumber": "Pcs" if entry_id else None, "FQty": qty if entry_id else None,
    }
    return [by_key.get(k) for k in SO_KEYS]


def test_rows_regroup_into_a_save_model_shaped_document() -> None:
    record = build_record(SALES_ORDER, SO_KEYS, [so_row(7, 11, 2.0), so_row(7, 12, 3.0)])
    assert record.id == "7"
    assert record.updated_at == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    data = record.data
    assert data["FBillTypeID"] == {"FNUMBER": "XSDD01_SYS"}
    assert data["FCustId"] == {"FNumber": "CUS-000001"}
    assert data["FSaleOrderFinance"] == {"FSettleCurrId": {"FNumber": "PRE001"}}
    assert [line["FEntryID"] for line in data["FSaleOrderEntry"]] == [11, 12]
    assert data["FSaleOrderEntry"][1]["FQty"] == 3.0
    assert data["FSaleOrderEntry"][0]["FMaterialId"] == {"FNumber": "1.01.001"}
    # A header without lines comes back as one row with null entry columns: no phantom line.
    assert build_record(SALES_ORDER, SO_KEYS, [so_row(8, None)]).data["FSaleOrderEntry"] == []


def test_a_full_page_holds_back_its_last_document() -> None:
    rows = [so_row(1, 1), so_row(1, 2), so_row(2, 3), so_row(2, 4)]
    groups, full = complete_groups(SALES_ORDER, rows, limit=4)
    assert full and [pk for pk, _ in groups] == [1]
    groups, full = complete_groups(SALES_ORDER, rows[:3], limit=4)
    assert not full and [pk for pk, _ in groups] == [1, 2]
    # One document filling the whole page: nothing is known to be whole yet.
    groups, full = complete_groups(SALES_ORDER, [so_row(3, 5), so_row(3, 6)], limit=2)
    assert full and groups == []
    # Header-only forms never hold back.
    cust_rows = [[1] + [None] * 14, [2] + [None] * 14]
    groups, full = complete_groups(CUSTOMER, cust_rows, limit=2)
    assert full and [pk for pk, _ in groups] == [1, 2]


def test_find_status_in_every_answer_shape() -> None:
    status = {"IsSuccess": False, "MsgCode": 9, "Errors": [{"Message": "x"}]}
    assert find_status({"Result": {"ResponseStatus": status}}) == status
    assert find_status([[{"Result": {"ResponseStatus": status}}]]) == status
    assert find_status({"ResponseStatus": status}) == status
    assert find_status([[1, "a"], [2, "b"]]) is None
    assert find_status([[100001]]) is None
    assert is_success({"IsSuccess": "True"}) and is_success({"IsSuccess": True})
    assert not is_success({"IsSuccess": "false"})


def test_body_classifier_and_session_lost() -> None:
    response = httpx.Response(200)
    throttled = {"Result": {"ResponseStatus": {"IsSuccess": False, "MsgCode": 14, "Errors": []}}}
    verdict = classify_body(response, throttled)
    assert verdict is not None and verdict.action is Action.RATE_LIMITED
    assert classify_body(response, [[1, 2]]) is None
    failed = classify_body(response, "response_error: boom")
    assert failed is not None and failed.action is Action.FAIL
    login = KingdeeLogin(mode="password", acct_id="a", username="u", lcid=2052)
    lost = [[{"Result": {"ResponseStatus": {"IsSuccess": False, "MsgCode": 1, "Errors": []}}}]]
    assert login.is_expired_response(response, lost)
    assert not login.is_expired_response(response, throttled)


def test_login_sign_matches_between_client_and_sandbox() -> None:
    args = ("66b2a4c1e9d30f", "erphub", "281937_x", "secret", "1767225600")
    assert client_login_sign(*args) == server_login_sign(*args)
    assert len(client_login_sign(*args)) == 64


def test_settings_require_the_credentials_of_their_mode() -> None:
    base = {"server_url": "http://127.0.0.1:1/k3cloud", "acct_id": "a", "username": "u"}
    with pytest.raises(ValueError, match="needs password"):
        KingdeeSettings.model_validate(base)
    with pytest.raises(ValueError, match="needs app_id"):
        KingdeeSettings.model_validate({**base, "auth_mode": "sign"})
    settings = KingdeeSettings.model_validate(
        {**base, "password": "Pw-s3cret-42", "auto_submit_audit": ["sales_order"]})
    assert settings.server_url.endswith("/k3cloud/")
    assert settings.audits("sales_order") and not settings.audits("customer")
    assert "Pw-s3cret-42" not in repr(settings)


# ---- the sandbox's signature checks agree with the SDK's own code byte for byte -----------------

CREDS = Credentials()


def test_decoded_app_secret_matches_the_sdk() -> None:
    ApiConfig.Xor_Code = ""
    part = CREDS.app_id.split("_")[1]
    for _ in range(5):  # the SDK mixes random digits into its code; they must not matter
        assert encode_util.DecodeAppSecret(part) == decode_app_secret(part)
    assert decode_app_secret("short") == "" == encode_util.DecodeAppSecret("short")


def test_hmac_encoding_matches_the_sdk() -> None:
    assert sdk_hmac("message", "key") == hmac_util.HmacSHA256("message", "key")


def sdk_headers(url: str) -> dict[str, str]:
    client = WebApiClient()
    client.config = ApiConfig()
    client.config.dcid, client.config.user_name = CREDS.acct_id, CREDS.username
    client.config.app_id, client.config.app_secret = CREDS.app_id, CREDS.app_secret
    client.config.org_num = 100
    client.Init(url, 0, True)
    return {k: str(v) for k, v in client.BuildHeader(url).items()}


def test_sdk_headers_verify_and_tampering_fails() -> None:
    url = "http://127.0.0.1:8080/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save.common.kdsvc"
    path = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save.common.kdsvc"
    headers = sdk_headers(url)
    assert headers["X-Api-Signature"] == api_signature(
        CREDS.app_id, path, headers["x-api-timestamp"], headers["x-api-nonce"])
    assert verify_signed_headers(headers, path, CREDS, max_skew_s=300) == (CREDS.acct_id, CREDS.username, 2052)
    with pytest.raises(SignatureError, match="X-Api-Signature"):
        verify_signed_headers(headers, path.replace("Save", "View"), CREDS, max_skew_s=300)
    with pytest.raises(SignatureError, match="X-Kd-Signature"):
        verify_signed_headers({**headers, "X-Kd-Signature": sdk_hmac("x", "y")}, path, CREDS, max_skew_s=300)
    with pytest.raises(SignatureError, match="过期"):
        stale = float(headers["x-api-timestamp"]) + 3600
        verify_signed_headers(headers, path, CREDS, max_skew_s=300, now=stale)
