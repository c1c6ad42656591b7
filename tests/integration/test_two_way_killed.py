"""Two-way over the Jiandaoyun and Kingdee sandboxes with a real SIGKILL: the CRM's phone change lands in
Kingdee and the hub dies before its store commits; the ERP's direction runs before the killed one reruns,
then the ERP changes the phone. Both systems end with the ERP's phone, no conflict, no duplicate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from erphub import sandbox as sandboxes
from erphub.sandbox.serve import SandboxServer
from tests.integration.test_crash_safety import KillSwitch
from tests.integration.test_two_way_example import CODE, customer, example_copy

PIPELINES = ("crm_customers_to_erp", "erp_customers_to_crm")


def test_a_two_way_run_killed_mid_write_converges_without_conflict_or_duplicate(tmp_path: Path) -> None:
    crm, erp = sandboxes.create("jiandaoyun"), sandboxes.create("kingdee", seed_customers=0)
    kill_erp_writes = KillSwitch(marker="Save")  # Kingdee Save / BatchSave
    config = example_copy(tmp_path)
    with SandboxServer(crm.app) as crm_server, SandboxServer(kill_erp_writes.wrap(erp.app)) as erp_server:
        env = {**os.environ, "ERPHUB_DEMO_JDY_URL": crm_server.base_url,
               "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}

        def start(*pipelines: str) -> subprocess.Popen[str]:
            return subprocess.Popen([sys.executable, "-m", "erphub.cli", "run", *pipelines, "--engine", "plain",
                                     "--json", "--config", str(config)], env=env, cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def run(*pipelines: str) -> list[dict]:
            process = start(*pipelines)
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
            return json.loads(out)

        def phones() -> tuple[str, str]:
            [row] = crm.state.find("customer_form", "customer_code", CODE)
            return row["phone"], erp.state.store.by_number("BD_Customer", CODE)["FTEL"]

        data_id = crm.state.insert_plain("customer_form", customer("13800000001"))
        run(*PIPELINES)
        assert phones() == ("13800000001", "13800000001")

        crm.state.touch("customer_form", [data_id], changes={"phone": "13911111111"})
        kill_erp_writes.after_writes = 1
        process = start("crm_customers_to_erp")
        kill_erp_writes.pid = process.pid
        process.communicate(timeout=300)
        assert process.returncode == -signal.SIGKILL and kill_erp_writes.kills == 1
        assert phones() == ("13911111111", "13911111111"), "the write landed; the store never committed it"

        run("erp_customers_to_crm")  # the other direction, before the killed one reruns
        store = erp.state.store
        store.save("BD_Customer", {"FCUSTID": store.by_number("BD_Customer", CODE)["FCUSTID"],
                                   "FTEL": "13722222222"}, need_update_fields=["FTEL"])
        run(*PIPELINES)
        run(*PIPELINES)
        assert phones() == ("13722222222", "13722222222"), "only the ERP changed since they agreed"
        quiet = run(*PIPELINES)
        assert sum(r["counts"]["created"] + r["counts"]["updated"] for r in quiet) == 0
        assert store.count_number("BD_Customer", CODE) == 1, "nothing duplicated"
        listed = subprocess.run([sys.executable, "-m", "erphub.cli", "conflicts", "list", "--status", "all",
                                 "--json", "--config", str(config)], env=env, cwd=tmp_path, capture_output=True,
                                text=True, check=True)
        assert json.loads(listed.stdout) == [], "no conflict: the ERP alone changed the phone"
