"""`erphub reconcile` on the demo (Jiandaoyun CRM -> Kingdee ERP sandboxes), and two-way between real
connectors: every shipped connector can now fetch records by id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from erphub import sandbox as sandboxes
from erphub.cli.main import app
from erphub.config.loader import load_config
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from erphub.sandbox.common import SandboxApp

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "crm_customers_to_erp"


def customer(code: str, name: str) -> dict[str, Any]:
    return {"customer_code": code, "customer_name": name, "short_name": name[:4], "credit_code": "91350100M000100Y43",
            "phone": "13812345678", "contact_name": "王经理", "email": "wang@example.com",
            "address": {"province": "广东省", "city": "深圳市", "district": "南山区", "detail": "科技园1号"},
            "customer_group": "KA", "salesperson": "S001", "currency": "CNY", "status": "正式",
            "erp_customer_no": "", "account_status": "none", "outstanding_balance": 0}


@dataclass
class Demo:
    config: Path
    environ: dict[str, str]
    crm: SandboxApp
    erp: SandboxApp

    def hub(self) -> Hub:
        return Hub(load_config(self.config, environ=self.environ))

    def reconcile(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = CliRunner(env=self.environ).invoke(app, ["reconcile", PIPELINE, "--json", "--config",
                                                          str(self.config), *args])
        return result.exit_code, json.loads(result.stdout)


def demo_copy(tmp_path: Path, extra: str = "") -> Path:
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("../mappings/", f"{ROOT}/mappings/").replace("[demo.env]", f"[{ROOT}/config/demo.env]")
    text = text.replace("sqlite:///../.erphub/demo/demo.db", f"sqlite:///{tmp_path}/state.db")
    path = tmp_path / "demo.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    crm, erp = sandboxes.create("jiandaoyun"), sandboxes.create("kingdee", seed_customers=0)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        environ = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        yield Demo(demo_copy(tmp_path), environ, crm, erp)


def test_reconcile_reports_and_repairs_drift_on_the_demo(demo: Demo) -> None:
    for n in range(1, 6):
        demo.crm.state.insert_plain("customer_form", customer(f"CUS-RC{n:03d}", f"对账客户{n}有限公司"))
    with demo.hub() as hub:
        info = run_pipeline(hub.pipeline(PIPELINE), hub.store)
    assert info.counts["created"] >= 5
    code, clean = demo.reconcile()
    assert code == 0, clean
    assert clean["missing"] == clean["different"] == clean["extra"] == 0 and clean["compared"] >= 5

    store = demo.erp.state.store
    store.by_number("BD_Customer", "CUS-RC001")["FName"] = "财务改过的名字"  # edited in the ERP by hand
    gone = store.by_number("BD_Customer", "CUS-RC002")  # deleted in the ERP
    del store.docs["BD_Customer"][gone["FCUSTID"]]
    store._numbers["BD_Customer"].pop("cus-rc002")
    code, found = demo.reconcile()
    assert code == 1
    assert {(i["key"], i["kind"], tuple(i["fields"])) for i in found["items"]} == {
        ("CUS-RC001", "different", ("FName",)), ("CUS-RC002", "missing", ())}

    code, repaired = demo.reconcile("--repair")
    assert code == 0, repaired
    assert repaired["repaired"] == 2
    assert store.by_number("BD_Customer", "CUS-RC001")["FName"] == "对账客户1有限公司"  # the ERP's own record
    assert store.by_number("BD_Customer", "CUS-RC002") is not None
    assert store.count_number("BD_Customer", "CUS-RC002") == 1
    code, again = demo.reconcile()
    assert code == 0 and again["items"] == []


ERP_TO_CRM = """\
source: customer
target: customer
key: customer_code
owns: [customer_code, phone]
fields:
  customer_code: {from: FNumber}
  phone: {from: FTEL}
"""


def test_two_way_validates_and_runs_between_jiandaoyun_and_kingdee(demo: Demo, tmp_path: Path) -> None:
    (tmp_path / "erp_to_crm.yaml").write_text(ERP_TO_CRM, encoding="utf-8")
    text = demo.config.read_text(encoding="utf-8").replace(
        "    mapping: " + f"{ROOT}/mappings/jiandaoyun_to_kingdee/customer.yaml\n",
        "    mapping: " + f"{ROOT}/mappings/jiandaoyun_to_kingdee/customer.yaml\n"
        "    two_way: {reverse: erp_customers_to_crm, fields: {FTEL: phone}, conflict_rule: newest_wins}\n", 1)
    text += f"""
  erp_customers_to_crm:
    source: {{system: erp, entity: customer}}
    target: {{system: crm, entity: customer}}
    mapping: {tmp_path}/erp_to_crm.yaml
    create_missing: false
    two_way: {{reverse: {PIPELINE}, fields: {{phone: FTEL}}, conflict_rule: newest_wins}}
"""
    demo.config.write_text(text, encoding="utf-8")
    validated = CliRunner(env=demo.environ).invoke(app, ["validate", "--json", "--config", str(demo.config)])
    assert validated.exit_code == 0, validated.output
    assert "erp_customers_to_crm" in json.loads(validated.stdout)["pipelines"]

    demo.crm.state.insert_plain("customer_form", customer("CUS-TW001", "双向客户有限公司"))
    with demo.hub() as hub:
        assert run_pipeline(hub.pipeline(PIPELINE), hub.store).counts["created"] >= 1
        assert run_pipeline(hub.pipeline("erp_customers_to_crm"), hub.store).counts["dead_lettered"] == 0
        store = demo.erp.state.store
        store.save("BD_Customer", {"FCUSTID": store.by_number("BD_Customer", "CUS-TW001")["FCUSTID"],
                                   "FTEL": "13900000000"}, need_update_fields=["FTEL"])
        counts = run_pipeline(hub.pipeline("erp_customers_to_crm"), hub.store).counts
    assert counts["updated"] == 1, counts
    [row] = demo.crm.state.find("customer_form", "customer_code", "CUS-TW001")
    assert row["phone"] == "13900000000"  # the ERP's phone edit reached the CRM's own record


def test_a_one_shot_reconcile_hands_its_drift_to_the_pushgateway(demo: Demo, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from erphub.sandbox.serve import SandboxServer
    from tests.unit.monitoring.test_monitoring_pushgateway import FakePushgateway

    demo.crm.state.insert_plain("customer_form", customer("CUS-PG001", "推送客户有限公司"))
    gateway = FakePushgateway()
    with SandboxServer(gateway.app()) as server:
        text = demo.config.read_text(encoding="utf-8").replace(
            "serve:\n", f"metrics: {{pushgateway_url: \"{server.base_url}\", instance: reconcile-test}}\nserve:\n", 1)
        demo.config.write_text(text, encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "erphub.cli", "reconcile", PIPELINE, "--json", "--config",
                                 str(demo.config)], env={**os.environ, **demo.environ}, cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]  # nothing synced yet: every customer is missing
    missing = json.loads(result.stdout)["missing"]
    assert missing >= 1
    [push] = gateway.pushes
    assert push.path.endswith("/instance/reconcile-test")
    assert f'erphub_drift_records{{kind="missing",pipeline="{PIPELINE}"}} {float(missing)}' in push.body
