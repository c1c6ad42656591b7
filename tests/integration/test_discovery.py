"""`erphub systems discover` reads each system's own metadata into schema/<system>.json, and mappings are
checked against it: unknown fields with "did you mean", read-only targets, constants of the wrong type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import (
    REAL,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    inspect,
)
from typer.testing import CliRunner

from erphub.cli.main import app
from erphub.connectors.base import SystemContext
from erphub.connectors.salesforce import SalesforceConnector, SalesforceSettings
from erphub.connectors.sql import SqlConnector, SqlSettings
from erphub.connectors.yonyou import YonyouConnector, YonyouSettings
from erphub.core.errors import MappingError
from erphub.mappings.compiler import compile_text
from erphub.mappings.schema_check import with_snapshot
from erphub.sandbox.common import SandboxApp, SandboxServer
from erphub.sandbox.jiandaoyun import DEMO_API_KEY, FormDef
from erphub.sandbox.jiandaoyun import create_sandbox as jiandaoyun_sandbox
from erphub.sandbox.kingdee import create_sandbox as kingdee_sandbox
from erphub.sandbox.salesforce import create_sandbox as salesforce_sandbox
from erphub.sandbox.yonyou import create_sandbox as yonyou_sandbox
from tests.contract.harnesses.sql_sqlite import SqlBackend, backend_fixture

runner = CliRunner()
FORM = FormDef("65a0c0ffee0000000000w002", "客户", "_widget_1700000000001",
               {"_widget_1700000000001": "text", "_widget_1700000000002": "text", "_widget_1700000000003": "number"},
               labels={"_widget_1700000000001": "客户编号", "_widget_1700000000002": "客户名称",
                       "_widget_1700000000003": "信用分"})
MAPPING = """\
source: client
target: customer
key: FNumber
fields:
  FNumber: {from: _widget_1700000000001}
  FName: {from: %(name_source)s}
  FTRADINGCURRID.FNumber: {const: PRE001}
  F_ABC_Region: {from: _widget_1700000000002}
%(extra)s"""


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[Path, SandboxApp, SandboxApp]]:
    crm = jiandaoyun_sandbox(seed_data=False, extra_forms=[FORM])
    erp = kingdee_sandbox(seed_customers=0, seed_receipts=0,
                          custom_fields={"BD_Customer": {"F_ABC_Region": "text", "F_ABC_Score": "number"}})
    with SandboxServer(crm) as crm_server, SandboxServer(erp) as erp_server:
        creds = erp.credentials
        (tmp_path / "jdy.key").write_text(DEMO_API_KEY, encoding="utf-8")
        (tmp_path / "kd.secret").write_text(creds["app_secret"], encoding="utf-8")
        (tmp_path / "hub.yaml").write_text(f"""\
version: 1
store: {{url: "sqlite:///{tmp_path}/state.db"}}
systems:
  crm:
    connector: jiandaoyun
    settings:
      base_url: {crm_server.base_url}
      entities:
        client: {{entry_id: {FORM.entry_id}, key_field: _widget_1700000000001}}
    secrets: {{api_key: "${{file:{tmp_path}/jdy.key}}"}}
  erp:
    connector: kingdee
    settings:
      server_url: {erp_server.base_url}/k3cloud/
      acct_id: {creds["acct_id"]}
      username: {creds["username"]}
      app_id: {creds["app_id"]}
      custom_fields: {{customer: [F_ABC_Region, F_ABC_Score]}}
    secrets: {{app_secret: "${{file:{tmp_path}/kd.secret}}"}}
pipelines:
  clients:
    source: {{system: crm, entity: client}}
    target: {{system: erp, entity: customer}}
    mapping: customer.yaml
""", encoding="utf-8")
        mapping(tmp_path)
        yield tmp_path, crm, erp


def mapping(tmp_path: Path, name_source: str = "_widget_1700000000002", extra: str = "") -> None:
    (tmp_path / "customer.yaml").write_text(MAPPING % {"name_source": name_source, "extra": extra}, encoding="utf-8")


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_discover_writes_snapshots_of_the_systems_own_fields(hub: tuple[Path, SandboxApp, SandboxApp]) -> None:
    tmp_path, _, _ = hub
    crm = cli("systems", "discover", "crm", "--json", "--config", str(tmp_path / "hub.yaml"))
    assert crm.exit_code == 0, crm.output
    snapshot = json.loads((tmp_path / "schema" / "crm.json").read_text(encoding="utf-8"))
    fields = snapshot["entities"]["client"]["fields"]
    assert fields["_widget_1700000000002"]["label"] == "客户名称"
    assert fields["_widget_1700000000003"]["type"] == "number"
    assert not fields["updateTime"]["updateable"]
    erp = cli("systems", "discover", "erp", "customer", "--config", str(tmp_path / "hub.yaml"))
    assert erp.exit_code == 0, erp.output
    customer = json.loads((tmp_path / "schema" / "erp.json").read_text(encoding="utf-8"))["entities"]["customer"]
    assert customer["source"] == "QueryBusinessInfo"
    assert customer["fields"]["F_ABC_Region"]["custom"] and customer["fields"]["FName"]["label"] == "客户名称"
    assert not customer["fields"]["FModifyDate"]["updateable"]
    assert "custom: F_ABC_Region, F_ABC_Score" in erp.output


def test_mappings_are_checked_against_the_snapshot(hub: tuple[Path, SandboxApp, SandboxApp]) -> None:
    tmp_path, _, _ = hub
    config = str(tmp_path / "hub.yaml")
    assert cli("validate", "--config", config).exit_code == 0  # the connector's defaults: anything goes
    assert cli("systems", "discover", "crm", "--config", config).exit_code == 0
    assert cli("systems", "discover", "erp", "--config", config).exit_code == 0
    mapping(tmp_path, name_source="_widget_170000000002")  # one digit short
    typo = cli("validate", "--config", config)
    assert typo.exit_code == 2 and "did you mean '_widget_1700000000002'" in typo.output
    assert "customer.yaml:6:" in typo.output and "Traceback" not in typo.output
    mapping(tmp_path, extra="  FModifyDate: {const: '2026-01-01'}\n")
    read_only = cli("validate", "--config", config)
    assert read_only.exit_code == 2 and "'FModifyDate' of 'customer' is read-only" in read_only.output
    mapping(tmp_path, extra="  F_ABC_Score: {const: high}\n")
    wrong_type = cli("validate", "--config", config)
    assert wrong_type.exit_code == 2 and "'F_ABC_Score' is a number field" in wrong_type.output


def test_a_mapping_using_a_custom_field_moves_it(hub: tuple[Path, SandboxApp, SandboxApp]) -> None:
    tmp_path, crm, erp = hub
    crm.state.insert_plain(FORM.entry_id, {"_widget_1700000000001": "C-77", "_widget_1700000000002": "华东"})
    run = cli("run", "--all", "--engine", "plain", "--json", "--config", str(tmp_path / "hub.yaml"))
    assert run.exit_code == 0, run.output
    doc = erp.state.store.get("BD_Customer", number="C-77")
    assert doc is not None and doc["F_ABC_Region"] == "华东"


def test_salesforce_describe_yonyou_documented_and_sql_reflection() -> None:
    sf_box = salesforce_sandbox(custom_fields={"Account": {"Region__c": "string"}})
    yy_box = yonyou_sandbox()
    with SandboxServer(sf_box) as sf_server, SandboxServer(yy_box) as yy_server:
        sf = SalesforceConnector(SalesforceSettings(login_url=sf_server.base_url, client_id="sf_demo_client_id",
                                                    client_secret=SecretStr("sf_demo_client_secret")),
                                 SystemContext(name="sf-discover"))
        account = sf.discover(["customer"])["customer"]
        assert account["fields"]["Region__c"]["custom"] and not account["fields"]["SystemModstamp"]["updateable"]
        order = sf.discover(["sales_order"])["sales_order"]
        assert not order["fields"]["items"]["items"]["PricebookEntryId"]["updateable"]
        sf.close()
        yy = YonyouConnector(YonyouSettings(tenant_id="demo_tenant", app_key="yonyou_demo_app_key",
                                            app_secret=SecretStr("yonyou_demo_app_secret"),
                                            discovery_url=yy_server.base_url), SystemContext(name="yy-discover"))
        found = yy.discover(["sales_order"])["sales_order"]
        assert found["source"] == "documented" and "invoiceAgentId" in found["fields"]
        assert "orderProductType" in found["fields"]["orderDetails"]["items"]
        yy.close()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def staging(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SqlBackend, Table]]:
    """A staging table of the numeric and text types each database reflects in its own words."""
    with backend_fixture(request.param, tmp_path) as backend:
        table = Table(f"{backend.table.name}_typed", MetaData(), Column("id", Integer, primary_key=True),
                      Column("order_no", String(40), nullable=False), Column("amount", Numeric(12, 2)),
                      Column("qty", BigInteger), Column("lines", SmallInteger), Column("ratio", REAL),
                      Column("updated_at", DateTime, nullable=False), schema=backend.schema)
        table.create(backend.engine)
        try:
            yield backend, table
        finally:
            table.drop(backend.engine)


def test_sql_discovery_reflects_the_staging_table(staging: tuple[SqlBackend, Table], tmp_path: Path) -> None:
    backend, table = staging
    with backend.engine.connect() as conn:  # what the database itself says the columns are
        native = {c["name"]: type(c["type"]).__name__.lower()
                  for c in inspect(conn).get_columns(table.name, schema=backend.schema)}
    settings = SqlSettings.model_validate({**backend.settings(), "entities": {"order": {
        "table": table.name, "schema": backend.schema, "key_column": "order_no", "id_column": "id",
        "cursor_column": "updated_at"}}})
    sql = SqlConnector(settings, SystemContext(name=f"sql-discover-{backend.name}"))
    discovered = sql.discover(["order"])
    spec = sql.entities()["order"]
    sql.close()
    fields = discovered["order"]["fields"]
    assert {name: fields[name]["type"] for name in native} == {
        "id": "integer", "order_no": "string", "amount": "numeric", "qty": "integer", "lines": "integer",
        "ratio": "numeric", "updated_at": "datetime"}, native
    assert fields["order_no"]["required"] and not fields["updated_at"]["createable"]
    # The mapping check knows those kinds: a text constant on a decimal/bigint/smallint/real column is refused.
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "staging.json").write_text(json.dumps({"entities": discovered}), encoding="utf-8")
    target = with_snapshot(spec, tmp_path, "staging")
    for column in ("amount", "qty", "lines", "ratio"):
        with pytest.raises(MappingError, match=f"'{column}' is a (numeric|integer) field"):
            compile_text(f"source: o\ntarget: order\nkey: order_no\nfields:\n  order_no: {{from: no}}\n"
                         f"  {column}: {{const: high}}\n", target=target)
    compile_text("source: o\ntarget: order\nkey: order_no\nfields:\n  order_no: {const: 7}\n", target=target)
