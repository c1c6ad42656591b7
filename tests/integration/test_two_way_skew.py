"""newest_wins over the Jiandaoyun and Kingdee sandboxes with the ERP's clock 30 s behind ours (within the
60 s overlap window both connectors declare). The CRM changes the phone, then the ERP changes it — later
in truth, but stamped 30 s earlier. Comparing the stamps alone would overwrite the ERP's newer phone with
the CRM's; within the allowance the edits are concurrent, so the conflict is held, both systems keep
their phone, and a person's `erphub conflicts resolve` settles it. With the allowance switched off
(`lag_seconds: 0`) the ERP's newer edit is lost: the test shows the difference."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from erphub import sandbox as sandboxes
from erphub.cli.main import app
from erphub.config.loader import load_config
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from erphub.sandbox.kingdee.store import shanghai_now
from tests.integration.test_two_way_example import CODE, customer, example_copy

PIPELINES = ("crm_customers_to_erp", "erp_customers_to_crm")


def behind() -> datetime:
    return shanghai_now() - timedelta(seconds=30)


@pytest.mark.parametrize("allowance", [True, False])
def test_a_newer_edit_stamped_by_a_slow_erp_clock_is_never_overwritten(tmp_path: Path, allowance: bool) -> None:
    crm, erp = sandboxes.create("jiandaoyun"), sandboxes.create("kingdee", seed_customers=0)
    erp.state.store.clock = behind
    config = example_copy(tmp_path)
    text = config.read_text(encoding="utf-8").replace("conflict_rule: hold", "conflict_rule: newest_wins")
    if not allowance:
        text = text.replace("    two_way: {reverse", "    lag_seconds: 0\n    two_way: {reverse")
    config.write_text(text, encoding="utf-8")
    with crm.serve() as crm_server, erp.serve() as erp_server:
        env = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}

        def run_both() -> int:
            with Hub(load_config(config, environ=env)) as hub:
                assert hub.pipeline(PIPELINES[0]).two_way.skew_s == (60.0 if allowance else 0.0)
                total = 0
                for name in PIPELINES:
                    counts = run_pipeline(hub.pipeline(name), hub.store).counts
                    total += counts["created"] + counts["updated"]
                return total

        def phones() -> tuple[str, str]:
            [row] = crm.state.find("customer_form", "customer_code", CODE)
            return row["phone"], erp.state.store.by_number("BD_Customer", CODE)["FTEL"]

        data_id = crm.state.insert_plain("customer_form", customer("13800000001"))
        run_both()
        run_both()
        assert phones() == ("13800000001", "13800000001")

        crm.state.touch("customer_form", [data_id], changes={"phone": "13911111111"})
        store = erp.state.store
        store.save("BD_Customer", {"FCUSTID": store.by_number("BD_Customer", CODE)["FCUSTID"],
                                   "FTEL": "13722222222"}, need_update_fields=["FTEL"])  # later, stamped earlier
        run_both()
        run_both()
        cli = CliRunner(env=env)
        listed = json.loads(cli.invoke(app, ["conflicts", "list", "--status", "all", "--json",
                                             "--config", str(config)]).stdout)
        if not allowance:
            assert phones() == ("13911111111", "13911111111"), "the stamps alone: the ERP's newer phone lost"
            return
        assert phones() == ("13911111111", "13722222222"), "concurrent within the allowance: neither overwritten"
        assert run_both() == 0
        [held] = listed
        assert (held["rule"], held["winner"], held["status"]) == ("newest_wins", None, "held")
        take = "target" if held["pipeline"] == "crm_customers_to_erp" else "source"  # the ERP's side
        resolved = cli.invoke(app, ["conflicts", "resolve", str(held["id"]), "--take", take, "--config", str(config)])
        assert resolved.exit_code == 0, resolved.output
        assert phones() == ("13722222222", "13722222222")
        assert run_both() == 0
        assert store.count_number("BD_Customer", CODE) == 1
