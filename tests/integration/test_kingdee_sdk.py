"""Conformance: Kingdee's own Python SDK (kingdee-cdp-webapi-sdk 8.2.0) as a client of the sandbox.

The SDK makes no login call: every request carries its signed headers (X-Api-Signature, X-Kd-
Signature, ...) and, once the server has set it, the `kdservice-sessionid` cookie. It is set up
both ways it offers: `InitConfig(...)` with parameters and `Init(config_path, node)` with an ini.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k3cloud_webapi_sdk.main import K3CloudApiSdk

from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.kingdee import create_sandbox


@pytest.fixture()
def served() -> Iterator[tuple[SandboxApp, SandboxServer]]:
    sandbox = create_sandbox()
    with SandboxServer(sandbox) as server:  # the SandboxApp: serve() unwraps the fault middleware
        yield sandbox, server


def sdk_for(sandbox: SandboxApp, server: SandboxServer, **overrides: Any) -> K3CloudApiSdk:
    creds = {**sandbox.credentials, **overrides}
    url = f"{server.base_url}/k3cloud/"
    sdk = K3CloudApiSdk(url, timeout=10)
    sdk.InitConfig(creds["acct_id"], creds["username"], creds["app_id"], creds["app_secret"], url,
                   2052, int(creds["org_number"]), connect_timeout=5, request_timeout=10)
    return sdk


def test_sdk_query_save_view(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    sdk = sdk_for(sandbox, server)

    rows = json.loads(sdk.ExecuteBillQuery({
        "FormId": "BD_MATERIAL", "FieldKeys": "FNumber,FName,FBaseUnitId.FNumber",
        "FilterString": "FNumber like '1.01.00%'", "OrderString": "FNumber ASC", "Limit": 3,
    }))
    assert rows == [["1.01.001", "深沟球轴承", "Pcs"], ["1.01.002", "直线导轨", "Pcs"], ["1.01.003", "伺服电机", "Set"]]

    saved = json.loads(sdk.Save("BD_Customer", {"Model": {
        "FCUSTID": 0, "FNumber": "SDK-0001", "FName": "金蝶SDK测试客户有限公司",
        "FCreateOrgId": {"FNumber": 100}, "FUseOrgId": {"FNumber": 100},
        "FTRADINGCURRID": {"FNumber": "PRE001"}, "FGroup": {"FNumber": "KA"},
    }}))
    status = saved["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True
    new_id = saved["Result"]["Id"]
    assert status["SuccessEntitys"] == [{"Id": new_id, "Number": "SDK-0001", "DIndex": 0}]

    viewed = json.loads(sdk.View("BD_Customer", {"Number": "SDK-0001"}))
    record = viewed["Result"]["Result"]
    assert record["Id"] == new_id
    assert record["Number"] == "SDK-0001"
    assert record["Group"]["Number"] == "KA"
    assert record["Name"] == [{"Key": 2052, "Value": "金蝶SDK测试客户有限公司"}]

    # The SDK kept and re-sent the session the first signed call opened: one session for all three.
    assert sdk.cookiesStore.SID
    assert sandbox.state.sessions.logins == 1


def test_sdk_batch_save_reports_per_record_errors(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    sdk = sdk_for(sandbox, server)
    answer = json.loads(sdk.BatchSave("SAL_SaleOrder", {"Model": [
        {"FBillNo": "SDK-SO-1", "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01",
         "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": "CUS-000001"}, "FSalerId": {"FNumber": "S001"},
         "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
         "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "1.01.003"}, "FUnitID": {"FNumber": "Set"}, "FQty": 2,
                              "FTaxPrice": 1980}]},
        {"FBillNo": "SDK-SO-2", "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01",
         "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": "CUS-404404"}, "FSalerId": {"FNumber": "S001"},
         "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
         "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "1.01.003"}, "FUnitID": {"FNumber": "Set"}, "FQty": 1}]},
    ]}))
    status = answer["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False
    assert [e["DIndex"] for e in status["SuccessEntitys"]] == [0]
    assert {(e["DIndex"], e["FieldName"]) for e in status["Errors"]} == {(1, "FCustId")}
    # The SDK's polling mode: the sandbox completes at once and the SDK unwraps Result.
    polled = json.loads(sdk.BatchSaveQuery("BD_Customer", {"Model": [
        {"FNumber": "SDK-Q-1", "FName": "轮询客户", "FCreateOrgId": {"FNumber": "100"},
         "FTRADINGCURRID": {"FNumber": "PRE001"}}]}))
    assert polled["Result"]["ResponseStatus"]["SuccessEntitys"][0]["Number"] == "SDK-Q-1"


def test_sdk_from_ini_file_and_renewal_after_session_loss(served: tuple[SandboxApp, SandboxServer],
                                                          tmp_path: Path) -> None:
    sandbox, server = served
    creds = sandbox.credentials
    url = f"{server.base_url}/k3cloud/"
    ini = tmp_path / "conf.ini"
    ini.write_text(
        "[config]\n"
        f"x-kdapi-serverurl = {url}\n"
        f"x-kdapi-acctid = {creds['acct_id']}\n"
        f"x-kdapi-username = {creds['username']}\n"
        f"x-kdapi-appid = {creds['app_id']}\n"
        f"x-kdapi-appsec = {creds['app_secret']}\n"
        "x-kdapi-lcid = 2052\n"
        f"x-kdapi-orgnum = {creds['org_number']}\n",
        encoding="utf-8",
    )
    sdk = K3CloudApiSdk(url, timeout=10)
    sdk.Init(config_path=str(ini), config_node="config")
    query = {"FormId": "BD_Customer", "FieldKeys": "FNumber", "FilterString": "FNumber = 'CUS-000002'"}
    assert json.loads(sdk.ExecuteBillQuery(query)) == [["CUS-000002"]]
    # The server forgets every session: the SDK's signed headers alone open a new one.
    sandbox.state.sessions.expire_all()
    assert json.loads(sdk.ExecuteBillQuery(query)) == [["CUS-000002"]]
    assert sandbox.state.sessions.logins == 2


def test_sdk_with_a_wrong_app_secret_is_refused(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    sdk = sdk_for(sandbox, server, app_secret="0" * 32)
    answer = json.loads(sdk.ExecuteBillQuery({"FormId": "BD_Customer", "FieldKeys": "FNumber"}))
    status = answer["Result"]["ResponseStatus"]
    assert status["MsgCode"] == 1 and "X-Kd-Signature" in status["Errors"][0]["Message"]
    assert sandbox.state.sessions.logins == 0


def test_sdk_with_a_wrong_account_gets_the_passport_error(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    # The account id is inside the signed X-Kd-Appdata, so this is a correctly signed request
    # for an account set the server does not have.
    sdk = sdk_for(sandbox, server, acct_id="000000000000aa")
    with pytest.raises(RuntimeError, match="Fail to verify thirty passport"):
        sdk.ExecuteBillQuery({"FormId": "BD_Customer", "FieldKeys": "FNumber"})


def test_sdk_query_business_info_and_allocate(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    sdk = sdk_for(sandbox, server)
    info = json.loads(sdk.QueryBusinessInfo({"FormId": "SAL_SaleOrder"}))
    assert info["Result"]["ResponseStatus"]["IsSuccess"] is True
    entrys = {e["Key"]: e for e in info["Result"]["NeedReturnData"]["Entrys"]}
    assert {"FBillHead", "FSaleOrderEntry"} <= set(entrys)
    assert "FMaterialId" in {f["Key"] for f in entrys["FSaleOrderEntry"]["Fields"]}

    saved = json.loads(sdk.Save("BD_Customer", {"Model": {
        "FCUSTID": 0, "FNumber": "SDK-ALLOC", "FName": "分配测试客户", "FCreateOrgId": {"FNumber": 100},
        "FUseOrgId": {"FNumber": 100}, "FTRADINGCURRID": {"FNumber": "PRE001"}}}))
    org_200 = sandbox.state.store.get("ORG_Organizations", number="200")["FORGID"]
    allocated = json.loads(sdk.Allocate("BD_Customer", {"PkIds": str(saved["Result"]["Id"]), "TOrgIds": str(org_200)}))
    assert allocated["Result"]["ResponseStatus"]["IsSuccess"] is True
    rows = json.loads(sdk.ExecuteBillQuery({"FormId": "BD_Customer", "FieldKeys": "FCUSTID,FUseOrgId.FNumber",
                                            "FilterString": "FNumber = 'SDK-ALLOC'", "OrderString": "FCUSTID ASC"}))
    assert [org for _, org in rows] == ["100", "200"]


def test_sdk_delete_refuses_audited_and_shipped_orders(served: tuple[SandboxApp, SandboxServer]) -> None:
    sandbox, server = served
    sdk, store = sdk_for(sandbox, server), sandbox.state.store

    def order(number: str) -> int:
        return int(store.insert("SAL_SaleOrder", {
            "FBillNo": number, "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01",
            "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": "CUS-000001"}, "FSalerId": {"FNumber": "S001"},
            "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
            "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "1.01.001"}, "FUnitID": {"FNumber": "Pcs"}, "FQty": 1,
                                 "FTaxPrice": 5}]}))

    free, audited, shipped = order("SO-DEL-1"), order("SO-DEL-2"), order("SO-DEL-3")
    store.change_status("SAL_SaleOrder", "Submit", None, str(audited))
    store.change_status("SAL_SaleOrder", "Audit", None, str(audited))
    store.insert("SAL_OUTSTOCK", {
        "FBillTypeID": {"FNUMBER": "XSCKD01_SYS"}, "FDate": "2026-03-02", "FSaleOrgId": {"FNumber": "100"},
        "FStockOrgId": {"FNumber": "100"}, "FCustomerID": {"FNumber": "CUS-000001"},
        "FEntity": [{"FMaterialID": {"FNumber": "1.01.001"}, "FUnitID": {"FNumber": "Pcs"}, "FRealQty": 1,
                     "FSoorDerno": "SO-DEL-3"}]})
    answer = json.loads(sdk.Delete("SAL_SaleOrder", {"Ids": f"{free},{audited},{shipped}"}))
    status = answer["Result"]["ResponseStatus"]
    assert [e["Id"] for e in status["SuccessEntitys"]] == [free]
    assert [e["DIndex"] for e in status["Errors"]] == [1, 2]
    assert store.get("SAL_SaleOrder", doc_id=free) is None and store.get("SAL_SaleOrder", doc_id=shipped)


def test_sdk_draft_keeps_an_incomplete_document_in_status_z(served: tuple[SandboxApp, SandboxServer]) -> None:
    """Draft (暂存) takes Save's request and answer; the document is Z, unnumbered, unaudited-invisible."""
    sandbox, server = served
    sdk, store = sdk_for(sandbox, server), sandbox.state.store
    model: dict[str, Any] = {
        "FID": 0, "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01", "FSaleOrgId": {"FNumber": "100"},
        "FCustId": {"FNumber": "CUS-000001"}, "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
        "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "1.01.001"}, "FUnitID": {"FNumber": "Pcs"}, "FQty": 2,
                             "FTaxPrice": 5}]}  # no FSalerId (required) and no FBillNo
    answer = json.loads(sdk.Draft("SAL_SaleOrder", {"Model": model}))
    status = answer["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True, status
    fid = answer["Result"]["Id"]
    assert status["SuccessEntitys"] == [{"Id": fid, "Number": None, "DIndex": 0}]
    doc = store.get("SAL_SaleOrder", doc_id=fid)
    assert doc["FDocumentStatus"] == "Z" and not doc.get("FBillNo") and doc["FModifyDate"]

    def query(filter_string: str) -> list[list[Any]]:
        return list(json.loads(sdk.ExecuteBillQuery({"FormId": "SAL_SaleOrder", "FieldKeys": "FID,FDocumentStatus",
                                                     "FilterString": filter_string})))
    assert query(f"FID = {fid}") == [[fid, "Z"]]
    assert query(f"FID = {fid} AND FDocumentStatus = 'C'") == []  # not among audited documents

    # Submitting it checks what the draft skipped.
    refused = json.loads(sdk.Submit("SAL_SaleOrder", {"Ids": str(fid)}))["Result"]["ResponseStatus"]
    assert refused["IsSuccess"] is False and "必录" in refused["Errors"][0]["Message"]
    # Drafting it again completes it; it is still a draft.
    again = json.loads(sdk.Draft("SAL_SaleOrder", {"Model": {"FID": fid, "FSalerId": {"FNumber": "S001"}},
                                                   "NeedUpDateFields": ["FSalerId"]}))
    assert again["Result"]["ResponseStatus"]["IsSuccess"] is True
    assert store.get("SAL_SaleOrder", doc_id=fid)["FDocumentStatus"] == "Z"
    for op in ("Submit", "Audit"):
        done = json.loads(getattr(sdk, op)("SAL_SaleOrder", {"Ids": str(fid)}))["Result"]["ResponseStatus"]
        assert done["IsSuccess"] is True, done
    doc = store.get("SAL_SaleOrder", doc_id=fid)
    assert doc["FDocumentStatus"] == "C" and doc["FBillNo"].startswith("XSDD")
    assert query(f"FID = {fid} AND FDocumentStatus = 'C'") == [[fid, "C"]]
    # A saved document cannot go back to a draft.
    late = json.loads(sdk.Draft("SAL_SaleOrder", {"Model": {"FID": fid, "FNote": "x"}}))["Result"]["ResponseStatus"]
    assert late["IsSuccess"] is False

    # Save of a draft makes it an ordinary created (A) document with its number.
    second = json.loads(sdk.Draft("SAL_SaleOrder", {"Model": {**model, "FSalerId": {"FNumber": "S001"}}}))
    second_id = second["Result"]["Id"]
    saved = json.loads(sdk.Save("SAL_SaleOrder", {"Model": {"FID": second_id, "FNote": "保存"},
                                                  "NeedUpDateFields": ["FNote"]}))
    assert saved["Result"]["ResponseStatus"]["IsSuccess"] is True, saved
    doc = store.get("SAL_SaleOrder", doc_id=second_id)
    assert doc["FDocumentStatus"] == "A" and doc["FBillNo"] and doc["FNote"] == "保存"
