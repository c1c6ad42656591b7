"""The Kingdee sandbox over HTTP on loopback: logins, sessions, queries, saves, status changes, faults."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.kingdee import create_sandbox, endpoint, login_sign

STUB = "Kingdee.BOS.WebApi.ServicesStub."


class Client:
    """A bare WebAPI client: what a non-SDK integration (PHP, C#, node) sends."""

    def __init__(self, sandbox: SandboxApp, base_url: str) -> None:
        self.sandbox = sandbox
        self.creds = sandbox.credentials
        self.http = httpx.Client(base_url=f"{base_url}/k3cloud/", timeout=10)

    def call(self, service: str, payload: Any) -> Any:
        response = self.http.post(f"{STUB}{service}.common.kdsvc", json=payload)
        assert response.status_code == 200, response.text
        return response.json()

    def login(self) -> dict[str, Any]:
        c = self.creds
        result: dict[str, Any] = self.call("AuthService.ValidateUser",
                                            {"parameters": [c["acct_id"], c["username"], c["password"], 2052]})
        return result

    def form(self, method: str, payload: Any) -> Any:
        return self.call(f"DynamicFormService.{method}", payload)

    def query(self, **data: Any) -> Any:
        return self.form("ExecuteBillQuery", {"data": data})


@pytest.fixture()
def kd() -> Iterator[Client]:
    sandbox = create_sandbox(calls_per_second=None)
    with SandboxServer(sandbox) as server:  # the SandboxApp: serve() unwraps the fault middleware
        client = Client(sandbox, server.base_url)
        client.login()
        yield client
        client.http.close()


def status_of(answer: Any) -> dict[str, Any]:
    if isinstance(answer, list):
        answer = answer[0][0]
    status: dict[str, Any] = answer["Result"]["ResponseStatus"]
    return status


def order_model(number: str, customer: str = "CUS-000001", lines: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "FID": 0, "FBillNo": number, "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01",
        "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": customer}, "FSalerId": {"FNumber": "S002"},
        "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
        "FSaleOrderEntry": [
            {"FMaterialId": {"FNumber": f"1.01.{i + 1:03d}"}, "FUnitID": {"FNumber": "Pcs"}, "FQty": i + 1,
             "FTaxPrice": 10.5, "FEntryTaxRate": 13}
            for i in range(lines)
        ],
        **extra,
    }


# ---- auth ---------------------------------------------------------------------------------------


def test_three_login_methods_and_failures() -> None:
    sandbox = create_sandbox()
    c = sandbox.credentials
    with SandboxServer(sandbox) as server:  # the SandboxApp: serve() unwraps the fault middleware
        client = Client(sandbox, server.base_url)
        ok = client.login()
        assert ok["LoginResultType"] == 1 and ok["IsSuccessByAPI"] is True
        assert ok["KDSVCSessionId"] == client.http.cookies["kdservice-sessionid"]
        by_secret = client.call("AuthService.LoginByAppSecret",
                                {"parameters": [c["acct_id"], c["username"], c["app_id"], c["app_secret"], 2052]})
        assert by_secret["LoginResultType"] == 1
        named = client.call("AuthService.LoginByAppSecret", {"acctID": c["acct_id"], "username": c["username"],
                                                             "appId": c["app_id"], "appSec": c["app_secret"],
                                                             "lcid": 2052})
        assert named["LoginResultType"] == 1
        ts = str(int(time.time()))
        sign = login_sign(c["acct_id"], c["username"], c["app_id"], c["app_secret"], ts)
        by_sign = client.call("AuthService.LoginBySign",
                              {"parameters": [c["acct_id"], c["username"], c["app_id"], ts, sign, 2052]})
        assert by_sign["LoginResultType"] == 1
        bad_sign = client.call("AuthService.LoginBySign",
                               {"parameters": [c["acct_id"], c["username"], c["app_id"], ts, "0" * 64, 2052]})
        assert bad_sign["LoginResultType"] == 0
        wrong = client.call("AuthService.ValidateUser", {"parameters": [c["acct_id"], c["username"], "nope", 2052]})
        assert wrong["LoginResultType"] == 0 and wrong["KDSVCSessionId"] is None
        assert sandbox.state.sessions.logins == 4


def test_missing_and_expired_sessions_answer_msgcode_1() -> None:
    sandbox = create_sandbox(idle_timeout_s=0.3)
    with SandboxServer(sandbox) as server:  # the SandboxApp: serve() unwraps the fault middleware
        client = Client(sandbox, server.base_url)
        no_session = client.query(FormId="BD_Customer", FieldKeys="FNumber")
        assert status_of(no_session)["MsgCode"] == 1
        assert status_of(no_session)["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"
        client.login()
        assert client.query(FormId="BD_Customer", FieldKeys="FNumber", Limit=1) == [["CUS-000001"]]
        # The session may also travel in the header of the same name instead of the cookie.
        sid = client.http.cookies["kdservice-sessionid"]
        client.http.cookies.clear()
        answer = client.http.post(f"{STUB}DynamicFormService.ExecuteBillQuery.common.kdsvc",
                                  headers={"kdservice-sessionid": sid},
                                  json={"data": {"FormId": "BD_Customer", "FieldKeys": "FNumber", "Limit": 1}})
        assert answer.json() == [["CUS-000001"]]
        time.sleep(0.5)  # idle longer than the timeout
        expired = client.http.post(f"{STUB}DynamicFormService.ExecuteBillQuery.common.kdsvc",
                                   headers={"kdservice-sessionid": sid},
                                   json={"data": {"FormId": "BD_Customer", "FieldKeys": "FNumber"}})
        assert expired.status_code == 200 and status_of(expired.json())["MsgCode"] == 1
        # And the fault plan can expire the next session check on demand.
        client.login()
        sandbox.faults.expire_session(1)
        assert status_of(client.query(FormId="BD_Customer", FieldKeys="FNumber"))["MsgCode"] == 1


def test_calls_per_second_limit_answers_msgcode_14() -> None:
    sandbox = create_sandbox(calls_per_second=3)
    with SandboxServer(sandbox) as server:  # the SandboxApp: serve() unwraps the fault middleware
        client = Client(sandbox, server.base_url)
        client.login()
        answers = [client.query(FormId="BD_UNIT", FieldKeys="FNumber") for _ in range(6)]
        throttled = [a for a in answers if isinstance(a, dict)]
        assert throttled, "some calls within one second must be refused"
        assert all(status_of(a)["MsgCode"] == 14 for a in throttled)
        assert answers[0] == [["Pcs"], ["Set"], ["Box"]]


# ---- reading ------------------------------------------------------------------------------------


def test_execute_bill_query_shapes(kd: Client) -> None:
    rows = kd.query(FormId="AR_RECEIVEBILL",
                    FieldKeys="FBillNo,FCONTACTUNIT.FNumber,FRECEIVEBILLENTRY_FEntryID,FRECTOTALAMOUNTFOR",
                    FilterString="FCONTACTUNIT.FNumber in ('CUS-000001','CUS-000002')", OrderString="FBillNo")
    assert [r[1] for r in rows] == ["CUS-000001", "CUS-000002"]
    assert all(isinstance(r[2], int) and r[3] > 0 for r in rows)
    # data as a JSON string (the .NET docs' form) and an unknown field's error shape.
    as_string = kd.form("ExecuteBillQuery", {"data": json.dumps({"FormId": "BD_UNIT", "FieldKeys": "FNumber,FName",
                                                                 "OrderString": "FNumber DESC"})})
    assert as_string == [["Set", "台"], ["Pcs", "个"], ["Box", "箱"]]
    bad = kd.query(FormId="BD_Customer", FieldKeys="FNumber,FIssueType")
    assert isinstance(bad, list) and status_of(bad)["MsgCode"] == 9
    assert status_of(bad)["Errors"][0]["Message"] == "元数据中标识为FIssueType的字段不存在"
    assert status_of(kd.query(FormId="NO_SUCH_FORM", FieldKeys="FNumber"))["Errors"][0]["Message"] == "业务对象不存在"
    bill = kd.form("BillQuery", {"data": {"FormId": "BD_UNIT", "FieldKeys": "FNumber,FName", "Limit": 1}})
    assert bill == [{"FNumber": "Pcs", "FName": "个"}]


def test_entry_rows_paging_and_top_row_count(kd: Client) -> None:
    saved = kd.form("Save", {"formid": "SAL_SaleOrder", "data": {"Model": order_model("SO-T-1", lines=3)}})
    assert status_of(saved)["IsSuccess"] is True
    keys = "FID,FBillNo,FSaleOrderEntry_FEntryID,FMaterialId.FNumber,FQty,FAllAmount"
    rows = kd.query(FormId="SAL_SaleOrder", FieldKeys=keys, OrderString="FID ASC, FSaleOrderEntry_FEntryID ASC")
    assert [r[3] for r in rows] == ["1.01.001", "1.01.002", "1.01.003"]
    assert [r[5] for r in rows] == [10.5, 21.0, 31.5]  # FAllAmount derived when not sent
    assert len({r[0] for r in rows}) == 1
    page2 = kd.query(FormId="SAL_SaleOrder", FieldKeys=keys, OrderString="FID ASC, FSaleOrderEntry_FEntryID ASC",
                     StartRow=2, Limit=2)
    assert page2 == rows[2:]
    assert len(kd.query(FormId="BD_MATERIAL", FieldKeys="FNumber", TopRowCount=4)) == 4
    assert len(kd.query(FormId="BD_MATERIAL", FieldKeys="FNumber", StartRow=15, Limit=100)) == 5
    header_only = kd.query(FormId="SAL_SaleOrder", FieldKeys="FBillNo")
    assert header_only == [["SO-T-1"]]


def test_modify_date_is_server_maintained_local_time(kd: Client) -> None:
    store = kd.sandbox.state.store
    before = store.clock()
    kd.form("Save", {"formid": "BD_Customer", "data": {"Model": {
        "FNumber": "T-1", "FName": "时间测试", "FCreateOrgId": {"FNumber": "100"},
        "FTRADINGCURRID": {"FNumber": "PRE001"}, "FModifyDate": "2000-01-01 00:00:00"}}})
    [[stamp]] = kd.query(FormId="BD_Customer", FieldKeys="FModifyDate", FilterString="FNumber='T-1'")
    assert not stamp.startswith("2000")
    assert stamp >= before.strftime("%Y-%m-%dT%H:%M:%S")
    assert kd.query(FormId="BD_Customer", FieldKeys="FNumber", FilterString=f"FModifyDate >= '{stamp}'") == [["T-1"]]


# ---- saving -------------------------------------------------------------------------------------


def test_batch_save_per_record_errors_and_uniqueness(kd: Client) -> None:
    answer = kd.form("BatchSave", {"formid": "SAL_SaleOrder", "data": {"Model": [
        order_model("SO-B-1"),
        order_model("SO-B-2", customer="CUS-999999"),
        order_model("SO-B-1"),  # same number again in one batch
        {"FID": 0, "FBillNo": "SO-B-4", "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}},
    ]}})
    status = status_of(answer)
    assert status["IsSuccess"] is False and status["MsgCode"] == 11
    assert [e["DIndex"] for e in status["SuccessEntitys"]] == [0]
    by_index: dict[int, list[dict[str, Any]]] = {}
    for err in status["Errors"]:
        by_index.setdefault(err["DIndex"], []).append(err)
    assert [e["FieldName"] for e in by_index[1]] == ["FCustId", "FCustId"]
    assert "CUS-999999" in by_index[1][0]["Message"]
    assert by_index[2][0]["FieldName"] == "FBillNo" and "已存在" in by_index[2][0]["Message"]
    assert {e["FieldName"] for e in by_index[3]} >= {"FDate", "FCustId", "FSettleCurrId"}
    assert kd.sandbox.state.store.count_number("SAL_SaleOrder", "SO-B-1") == 1


def test_partial_update_and_entry_handling(kd: Client) -> None:
    saved = kd.form("Save", {"formid": "SAL_SaleOrder", "data": {"Model": order_model("SO-U-1", lines=2)}})
    fid = saved["Result"]["Id"]
    store = kd.sandbox.state.store
    entry_ids = [r["FEntryID"] for r in store.get("SAL_SaleOrder", doc_id=fid)["FSaleOrderEntry"]]
    # Only FNote is updated; the lines (not in NeedUpDateFields) stay as they are.
    kd.form("Save", {"formid": "SAL_SaleOrder", "data": {
        "NeedUpDateFields": ["FNote"], "Model": {"FID": fid, "FNote": "加急", "FCustId": {"FNumber": "CUS-000002"}}}})
    model = store.to_model("SAL_SaleOrder", store.get("SAL_SaleOrder", doc_id=fid))
    assert model["FNote"] == "加急" and model["FCustId"] == {"FNumber": "CUS-000001"}
    assert [r["FEntryID"] for r in model["FSaleOrderEntry"]] == entry_ids
    # An entry field update keeps the line ids it names and (IsDeleteEntry true) drops the others.
    kd.form("Save", {"formid": "SAL_SaleOrder", "data": {
        "NeedUpDateFields": ["FSaleOrderEntry", "FQty"],
        "Model": {"FID": fid, "FSaleOrderEntry": [{"FEntryID": entry_ids[1], "FQty": 9}]}}})
    model = store.to_model("SAL_SaleOrder", store.get("SAL_SaleOrder", doc_id=fid))
    assert [(r["FEntryID"], r["FQty"]) for r in model["FSaleOrderEntry"]] == [(entry_ids[1], 9.0)]
    # IsDeleteEntry false keeps lines that are not sent and appends new ones.
    kd.form("Save", {"formid": "SAL_SaleOrder", "data": {
        "IsDeleteEntry": "false", "NeedUpDateFields": ["FSaleOrderEntry", "FMaterialId", "FUnitID", "FQty"],
        "Model": {"FID": fid, "FSaleOrderEntry": [
            {"FEntryID": 0, "FMaterialId": {"FNumber": "1.01.005"}, "FUnitID": {"FNumber": "Set"}, "FQty": 1}]}}})
    model = store.to_model("SAL_SaleOrder", store.get("SAL_SaleOrder", doc_id=fid))
    assert [r["FMaterialId"]["FNumber"] for r in model["FSaleOrderEntry"]] == ["1.01.002", "1.01.005"]
    # Without NeedUpDateFields the Model replaces the record: leaving out a required field fails.
    answer = kd.form("Save", {"formid": "SAL_SaleOrder", "data": {"Model": {"FID": fid, "FNote": "x"}}})
    assert status_of(answer)["IsSuccess"] is False
    assert "字段[客户]是必录字段" in {e["Message"] for e in status_of(answer)["Errors"]}


def test_submit_audit_and_audited_documents_are_read_only(kd: Client) -> None:
    saved = kd.form("Save", {"formid": "SAL_SaleOrder", "data": {"Model": order_model("SO-A-1")}})
    fid = saved["Result"]["Id"]

    def doc_status() -> str:
        [[value]] = kd.query(FormId="SAL_SaleOrder", FieldKeys="FDocumentStatus", FilterString=f"FID={fid}")
        return str(value)

    assert doc_status() == "A"
    audit_early = kd.form("Audit", {"formid": "SAL_SaleOrder", "data": {"Ids": str(fid)}})
    assert status_of(audit_early)["IsSuccess"] is False and doc_status() == "A"
    submitted = kd.form("Submit", {"formid": "SAL_SaleOrder", "data": {"Numbers": ["SO-A-1"]}})
    assert status_of(submitted)["SuccessEntitys"] == [{"Id": fid, "Number": "SO-A-1", "DIndex": 0}]
    assert doc_status() == "B"
    assert status_of(kd.form("Audit", {"formid": "SAL_SaleOrder", "data": {"Ids": f"{fid}"}}))["IsSuccess"] is True
    assert doc_status() == "C"
    again = kd.form("Audit", {"formid": "SAL_SaleOrder", "data": {"Ids": f"{fid}"}})
    assert status_of(again)["MsgCode"] == 11 and "已经审核" in status_of(again)["Errors"][0]["Message"]
    refused = kd.form("Save", {"formid": "SAL_SaleOrder", "data": {"NeedUpDateFields": ["FNote"],
                                                                    "Model": {"FID": fid, "FNote": "改"}}})
    assert status_of(refused)["Errors"][0]["Message"] == "单据已审核，不允许修改"
    assert status_of(kd.form("UnAudit", {"formid": "SAL_SaleOrder", "data": {"Ids": f"{fid}"}}))["IsSuccess"]
    assert doc_status() == "D"
    changed = kd.form("Save", {"formid": "SAL_SaleOrder", "data": {"NeedUpDateFields": ["FNote"],
                                                                    "Model": {"FID": fid, "FNote": "改"}}})
    assert status_of(changed)["IsSuccess"] is True


def test_view_by_number_and_id(kd: Client) -> None:
    by_number = kd.form("View", {"formid": "BD_Customer", "data": {"Number": "CUS-000003"}})
    record = by_number["Result"]["Result"]
    by_id = kd.form("View", {"formid": "BD_Customer", "data": {"Id": record["Id"]}})
    assert by_id["Result"]["Result"] == record
    assert record["TRADINGCURRID"]["Number"] == "PRE001"
    missing = kd.form("View", {"formid": "BD_Customer", "data": {"Number": "NOPE"}})
    assert status_of(missing)["MsgCode"] == 10


def test_old_parameters_wrapper(kd: Client) -> None:
    model = {"Model": {"FNumber": "OLD-1", "FName": "旧版客户端", "FCreateOrgId": {"FNumber": "100"},
                       "FTRADINGCURRID": {"FNumber": "PRE001"}}}
    answer = kd.form("Save", {"format": 1, "useragent": "ApiClient", "rid": "1", "v": "1.0",
                              "timestamp": "2026-03-01", "parameters": ["BD_Customer", json.dumps(model)]})
    assert status_of(answer)["IsSuccess"] is True
    rows = kd.form("ExecuteBillQuery", {"parameters": [json.dumps(
        {"FormId": "BD_Customer", "FieldKeys": "FName", "FilterString": "FNumber='OLD-1'"})]})
    assert rows == [["旧版客户端"]]


# ---- fault injection ----------------------------------------------------------------------------


def test_faults_record_failure_lost_response_and_malformed(kd: Client) -> None:
    faults = kd.sandbox.faults
    faults.fail_records(endpoint("BatchSave"), {"SO-F-2": "注入的校验失败"})
    answer = kd.form("BatchSave", {"formid": "SAL_SaleOrder", "data": {"Model": [
        order_model("SO-F-1"), order_model("SO-F-2")]}})
    assert [e["DIndex"] for e in status_of(answer)["SuccessEntitys"]] == [0]
    assert status_of(answer)["Errors"] == [{"FieldName": None, "Message": "注入的校验失败", "DIndex": 1}]

    faults.lose_next_response(endpoint("Save"))
    with pytest.raises(httpx.TransportError):
        kd.form("Save", {"formid": "SAL_SaleOrder", "data": {"Model": order_model("SO-F-3")}})
    assert kd.sandbox.state.store.count_number("SAL_SaleOrder", "SO-F-3") == 1  # applied nonetheless

    faults.malformed(endpoint("ExecuteBillQuery"))
    raw = kd.http.post(f"{STUB}DynamicFormService.ExecuteBillQuery.common.kdsvc",
                       json={"data": {"FormId": "BD_UNIT", "FieldKeys": "FNumber"}})
    with pytest.raises(ValueError):
        json.loads(raw.content)
    faults.burst_429(endpoint("ExecuteBillQuery"), 1, retry_after=2)
    limited = kd.http.post(f"{STUB}DynamicFormService.ExecuteBillQuery.common.kdsvc",
                           json={"data": {"FormId": "BD_UNIT", "FieldKeys": "FNumber"}})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert kd.sandbox.log.count(endpoint("ExecuteBillQuery")) >= 2
