"""`erphub dlq replay` uses the fix: 40 CRM customers broken on purpose, corrected in the CRM, replayed by
re-reading each from the CRM (Jiandaoyun data/get) and read back from the Kingdee sandbox's own records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from erphub import sandbox as sandboxes
from erphub.cli.main import app
from erphub.config.loader import load_config
from erphub.connectors.jiandaoyun import parse_time
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from tests.integration.test_reconcile_demo import PIPELINE, Demo, customer, demo_copy

BROKEN, GOOD = 40, 5


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    crm, erp = sandboxes.create("jiandaoyun", seed_data=False), sandboxes.create("kingdee", seed_customers=0)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        environ = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        yield Demo(demo_copy(tmp_path), environ, crm, erp)


def replay(demo: Demo, *args: str) -> tuple[int, dict]:
    result = CliRunner(env=demo.environ).invoke(app, ["dlq", "replay", "--pipeline", PIPELINE, "--json",
                                                      "--config", str(demo.config), *args])
    [outcome] = json.loads(result.stdout)
    return result.exit_code, outcome


def test_replay_rereads_the_corrected_source_records_and_delivers_every_one(demo: Demo) -> None:
    crm, store = demo.crm.state, demo.erp.state.store
    broken = [crm.insert_plain("customer_form", {**customer(f"CUS-DL{n:03d}", f"回放客户{n}有限公司"),
                                                 "salesperson": "S999"}) for n in range(BROKEN)]
    for n in range(GOOD):
        crm.insert_plain("customer_form", customer(f"CUS-OK{n:03d}", f"正常客户{n}有限公司"))
    with Hub(load_config(demo.config, environ=demo.environ)) as hub:
        counts = run_pipeline(hub.pipeline(PIPELINE), hub.store).counts
    assert counts["created"] == GOOD and counts["dead_lettered"] == BROKEN
    assert len(store.docs["BD_Customer"]) == GOOD

    # Corrected in the CRM (one of them deleted there instead).
    form = crm.forms["customer_form"]
    for data_id in broken[1:]:
        crm.update(form, data_id, {"salesperson": "S002"})
    crm.delete("customer_form", broken[0])

    code, kept = replay(demo, "--kept")  # the payloads kept at failure time are still broken
    assert code == 1 and kept["source"] == "kept" and kept["failed"] == BROKEN
    assert len(store.docs["BD_Customer"]) == GOOD

    code, fixed = replay(demo)
    assert code == 0, fixed
    assert fixed["source"] == "fetched" and fixed["failed"] == 0 and fixed["source_deleted"] == 1
    assert fixed["counts"]["created"] == BROKEN - 1
    for n in range(1, BROKEN):
        doc = store.by_number("BD_Customer", f"CUS-DL{n:03d}")
        assert doc is not None and store.to_model("BD_Customer", doc)["FSELLER"]["FNumber"] == "S002"
    assert store.by_number("BD_Customer", "CUS-DL000") is None
    assert len(store.docs["BD_Customer"]) == GOOD + BROKEN - 1

    with Hub(load_config(demo.config, environ=demo.environ)) as hub:
        letters = hub.store.list_dead_letters(pipeline=PIPELINE, status=None)
        assert {(letter.status, letter.resolution) for letter in letters} == {
            ("replayed", "replayed"), ("resolved", "source_deleted")}
        # The replayed record keeps its own change time (the CRM's updateTime), not the replay's clock.
        link = hub.store.links_for(PIPELINE, [broken[5]])[broken[5]]
        assert link.source_updated_at == parse_time(crm.get("customer_form", broken[5])["updateTime"])
        # Nothing is left for the next run: it reads the corrected records and writes nothing.
        again = run_pipeline(hub.pipeline(PIPELINE), hub.store).counts
    assert again["created"] == again["dead_lettered"] == 0
