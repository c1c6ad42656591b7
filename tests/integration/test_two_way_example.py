"""The shipped two-way example (config/examples/two_way_customers.yaml) over the Jiandaoyun and Kingdee
sandboxes: a phone changed on both sides is held, the CRM is edited again while it waits, and
`erphub conflicts resolve --take source` gives both systems the CRM's newer phone, not the stale one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from erphub import sandbox as sandboxes
from erphub.cli.main import app
from erphub.config.loader import load_config
from erphub.engine import run_pipeline
from erphub.runtime import Hub

ROOT = Path(__file__).resolve().parents[2]
CODE = "CUS-TWX01"


def example_copy(tmp_path: Path) -> Path:
    text = (ROOT / "config" / "examples" / "two_way_customers.yaml").read_text(encoding="utf-8")
    text = text.replace("../../mappings/", f"{ROOT}/mappings/").replace("[../demo.env]", f"[{ROOT}/config/demo.env]")
    text = text.replace("sqlite:///../../.erphub/two_way_customers.db", f"sqlite:///{tmp_path}/state.db")
    path = tmp_path / "two_way.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def customer(phone: str) -> dict[str, Any]:
    return {"customer_code": CODE, "customer_name": "双向示例有限公司", "short_name": "双向示例",
            "credit_code": "91350100M000100Y43", "phone": phone, "contact_name": "王经理", "email": "wang@example.com",
            "address": {"province": "广东省", "city": "深圳市", "district": "南山区", "detail": "科技园1号"},
            "customer_group": "KA", "salesperson": "S001", "currency": "CNY", "status": "正式",
            "erp_customer_no": "", "account_status": "none", "outstanding_balance": 0}


def test_a_user_runs_the_two_way_example_and_resolves_a_held_conflict(tmp_path: Path) -> None:
    crm, erp = sandboxes.create("jiandaoyun"), sandboxes.create("kingdee", seed_customers=0)
    config = example_copy(tmp_path)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        env = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        cli = CliRunner(env=env)

        def run_both() -> int:
            with Hub(load_config(config, environ=env)) as hub:
                total = 0
                for name in ("crm_customers_to_erp", "erp_customers_to_crm"):
                    counts = run_pipeline(hub.pipeline(name), hub.store).counts
                    total += counts["created"] + counts["updated"]
                return total

        def phones() -> tuple[str, str]:
            [row] = crm.state.find("customer_form", "customer_code", CODE)
            return row["phone"], erp.state.store.by_number("BD_Customer", CODE)["FTEL"]

        assert cli.invoke(app, ["validate", "--config", str(config)]).exit_code == 0
        data_id = crm.state.insert_plain("customer_form", customer("13800000001"))
        run_both()
        assert phones() == ("13800000001", "13800000001")
        assert run_both() == 0

        crm.state.touch("customer_form", [data_id], changes={"phone": "13911111111"})
        store = erp.state.store
        store.save("BD_Customer", {"FCUSTID": store.by_number("BD_Customer", CODE)["FCUSTID"],
                                   "FTEL": "13722222222"}, need_update_fields=["FTEL"])
        run_both()
        run_both()
        assert phones() == ("13911111111", "13722222222"), "hold changes neither side"
        listed = cli.invoke(app, ["conflicts", "list", "--json", "--config", str(config)])
        assert listed.exit_code == 0, listed.output
        [held] = json.loads(listed.stdout)
        assert held["field"] in ("FTEL", "phone")

        crm.state.touch("customer_form", [data_id], changes={"phone": "13933333333"})  # newer, while held
        run_both()
        assert len(json.loads(cli.invoke(app, ["conflicts", "list", "--json", "--config", str(config)]).stdout)) == 1
        take = "source" if held["pipeline"] == "crm_customers_to_erp" else "target"  # the CRM's side
        resolved = cli.invoke(app, ["conflicts", "resolve", str(held["id"]), "--take", take, "--config", str(config)])
        assert resolved.exit_code == 0, resolved.output
        assert "13933333333" in resolved.stdout
        assert phones() == ("13933333333", "13933333333"), "the CRM's newer phone, never the stale 139...111"
        assert run_both() == 0
        assert phones() == ("13933333333", "13933333333")
        assert json.loads(cli.invoke(app, ["conflicts", "list", "--json", "--config", str(config)]).stdout) == []
