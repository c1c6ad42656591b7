"""A Jiandaoyun form addressed by `_widget_` ids (no aliases) syncs end to end, and configured aliases work.

Real forms name their fields by widget id unless someone set aliases (vendor-gaps.md, Jiandaoyun); the
connector must not depend on the CRM demo's aliases. The sync is judged on the ERP's own data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from erphub.cli.main import app
from erphub.connectors.base import SystemContext
from erphub.connectors.jiandaoyun import JiandaoyunConnector, JiandaoyunSettings
from erphub.core.records import WriteRequest
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.jiandaoyun import DEMO_API_KEY, FormDef
from erphub.sandbox.jiandaoyun import create_sandbox as jiandaoyun_sandbox
from erphub.sandbox.kingdee import create_sandbox as kingdee_sandbox

WIDGET_FORM = FormDef(
    "65a0c0ffee0000000000w001",
    "客户档案",
    "_widget_1700000000001",
    {"_widget_1700000000001": "text", "_widget_1700000000002": "text", "_widget_1700000000003": "text"},
    subforms={"_widget_1700000000010": {"_widget_1700000000011": "text", "_widget_1700000000012": "number"}},
    labels={"_widget_1700000000001": "客户编号", "_widget_1700000000002": "客户名称",
            "_widget_1700000000003": "电话", "_widget_1700000000010": "联系人",
            "_widget_1700000000010._widget_1700000000011": "姓名",
            "_widget_1700000000010._widget_1700000000012": "序号"},
)


@pytest.fixture
def servers() -> Iterator[tuple[SandboxApp, SandboxServer, SandboxApp, SandboxServer]]:
    crm = jiandaoyun_sandbox(seed_data=False, extra_forms=[WIDGET_FORM])
    erp = kingdee_sandbox(seed_customers=0, seed_receipts=0)
    with SandboxServer(crm) as crm_server, SandboxServer(erp) as erp_server:
        yield crm, crm_server, erp, erp_server


def write_config(tmp_path: Path, crm_url: str, erp: SandboxApp, erp_url: str) -> Path:
    (tmp_path / "customer.yaml").write_text("""\
source: client
target: customer
key: FNumber
fields:
  FNumber: {from: _widget_1700000000001, transforms: [trim, upper]}
  FName: {from: _widget_1700000000002}
  FTEL: {from: _widget_1700000000003}
  FTRADINGCURRID.FNumber: {const: PRE001}
""", encoding="utf-8")
    creds = erp.credentials
    (tmp_path / "jdy.key").write_text(DEMO_API_KEY, encoding="utf-8")
    (tmp_path / "kd.secret").write_text(creds["app_secret"], encoding="utf-8")
    config = tmp_path / "hub.yaml"
    config.write_text(f"""\
version: 1
store: {{url: "sqlite:///{tmp_path}/state.db"}}
systems:
  crm:
    connector: jiandaoyun
    settings:
      base_url: {crm_url}
      app_id: crm_app_0001
      entities:
        client: {{entry_id: {WIDGET_FORM.entry_id}, key_field: _widget_1700000000001}}
    secrets: {{api_key: "${{file:{tmp_path}/jdy.key}}"}}
  erp:
    connector: kingdee
    settings:
      server_url: {erp_url}/k3cloud/
      acct_id: {creds["acct_id"]}
      username: {creds["username"]}
      app_id: {creds["app_id"]}
    secrets: {{app_secret: "${{file:{tmp_path}/kd.secret}}"}}
pipelines:
  clients_to_erp:
    source: {{system: crm, entity: client}}
    target: {{system: erp, entity: customer}}
    mapping: customer.yaml
""", encoding="utf-8")
    return config


def test_a_widget_id_form_without_aliases_syncs_to_the_erp(
    servers: tuple[SandboxApp, SandboxServer, SandboxApp, SandboxServer], tmp_path: Path,
) -> None:
    crm, crm_server, erp, erp_server = servers
    for n in range(3):
        crm.state.insert_plain(WIDGET_FORM.entry_id, {"_widget_1700000000001": f"w-{n}",
                                                      "_widget_1700000000002": f"组件客户{n}",
                                                      "_widget_1700000000003": f"021-555{n}"})
    config = write_config(tmp_path, crm_server.base_url, erp, erp_server.base_url)
    result = CliRunner().invoke(app, ["run", "--all", "--engine", "plain", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    [run] = json.loads(result.stdout)
    assert run["counts"]["created"] == 3
    for n in range(3):
        doc = erp.state.store.get("BD_Customer", number=f"W-{n}")
        assert doc is not None and doc["FName"] == f"组件客户{n}" and doc["FTEL"] == f"021-555{n}"


def connector(server: SandboxServer, **entities: dict[str, object]) -> JiandaoyunConnector:
    settings = JiandaoyunSettings(base_url=server.base_url, api_key=SecretStr(DEMO_API_KEY),
                                  entities=entities)  # type: ignore[arg-type]
    return JiandaoyunConnector(settings, SystemContext(name="jdy-widgets", read_timeout_s=5))


def test_aliases_name_widget_fields_both_ways_including_sub_forms(
    servers: tuple[SandboxApp, SandboxServer, SandboxApp, SandboxServer],
) -> None:
    crm, crm_server, _, _ = servers
    aliases = {"code": "_widget_1700000000001", "name": "_widget_1700000000002",
               "contacts": "_widget_1700000000010", "contacts.person": "_widget_1700000000010._widget_1700000000011"}
    jdy = connector(crm_server, client={"entry_id": WIDGET_FORM.entry_id, "key_field": "code", "aliases": aliases})
    data = {"code": "A-1", "name": "别名客户", "contacts": [{"person": "张三", "_widget_1700000000012": 1}]}
    [created] = jdy.write("client", [WriteRequest("s1", "A-1", None, data, "k1")])
    assert created.ok, created.error
    [stored] = crm.state.all(WIDGET_FORM.entry_id)
    assert stored["_widget_1700000000001"] == "A-1" and stored["_widget_1700000000002"] == "别名客户"
    assert stored["_widget_1700000000010"][0]["_widget_1700000000011"] == "张三"
    assert jdy.lookup("client", ["A-1"]) == {"A-1": created.target_id}
    [record] = [r for page in jdy.read_changes("client", None) for r in page.records]
    assert record.data["code"] == "A-1" and record.data["contacts"][0]["person"] == "张三"
    assert record.data["contacts"][0]["_widget_1700000000012"] == 1
    jdy.close()


def test_mappings_may_name_widget_fields_by_their_labels(
    servers: tuple[SandboxApp, SandboxServer, SandboxApp, SandboxServer],
) -> None:
    crm, crm_server, _, _ = servers
    jdy = connector(crm_server, client={"entry_id": WIDGET_FORM.entry_id, "key_field": "客户编号", "labels": True})
    data = {"客户编号": "L-1", "客户名称": "标签客户", "联系人": [{"姓名": "李四", "序号": 1}]}
    [created] = jdy.write("client", [WriteRequest("s1", "L-1", None, data, "k1")])
    assert created.ok, created.error
    [stored] = crm.state.all(WIDGET_FORM.entry_id)
    assert stored["_widget_1700000000002"] == "标签客户"
    assert stored["_widget_1700000000010"][0]["_widget_1700000000011"] == "李四"
    assert jdy.lookup("client", ["L-1"]) == {"L-1": created.target_id}
    [record] = [r for page in jdy.read_changes("client", None) for r in page.records]
    assert record.data["客户名称"] == "标签客户" and record.data["联系人"][0]["序号"] == 1
    assert "电话" in jdy.discover(["client"])["client"]["fields"]
    jdy.close()
