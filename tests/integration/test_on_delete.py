"""Deletions are declared (`on_delete`): a CRM customer deleted in Jiandaoyun is forbidden in Kingdee (the
vendor forbids customers, it does not delete them), whether the deletion arrives as a signed `data_remove`
push or as reconcile's `extra`; with the default `ignore` nothing happens to the ERP record."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from erphub import sandbox as sandboxes
from erphub.cli.main import app
from erphub.config.loader import load_config
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from erphub.webhooks.receiver import WebhookReceiver, router_from_config
from erphub.webhooks.worker import InboxWorker
from tests.integration.test_reconcile_demo import PIPELINE, Demo, customer, demo_copy

SECRET = "jdy-push-secret-on-delete"


def configure(demo: Demo, on_delete: str) -> None:
    (demo.config.parent / "jdy.secret").write_text(SECRET, encoding="utf-8")
    text = demo.config.read_text(encoding="utf-8")
    webhooks = '  webhooks:\n    jdy: {kind: jiandaoyun, secret: "${file:jdy.secret}"}\n'
    text = text.replace("serve:\n", "serve:\n" + webhooks, 1)
    schedule = '    schedule: "*/10 * * * *"\n'  # the first pipeline's, crm_customers_to_erp
    text = text.replace(schedule, f"{schedule}    on_delete: {on_delete}\n"
                        "    webhook: {source: jdy, events: [data_create, data_update, data_remove]}\n", 1)
    demo.config.write_text(text, encoding="utf-8")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    crm, erp = sandboxes.create("jiandaoyun", seed_data=False), sandboxes.create("kingdee", seed_customers=0)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        environ = {"ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        yield Demo(demo_copy(tmp_path), environ, crm, erp)


def seed_and_sync(demo: Demo, n: int) -> list[str]:
    ids = [demo.crm.state.insert_plain("customer_form", customer(f"CUS-DEL{i:03d}", f"删除客户{i}有限公司"))
           for i in range(n)]
    with demo.hub() as hub:
        assert run_pipeline(hub.pipeline(PIPELINE), hub.store).counts["created"] == n
    return ids


def forbid_status(demo: Demo, code: str) -> str:
    doc = demo.erp.state.store.by_number("BD_Customer", code)
    assert doc is not None, f"{code} must stay in Kingdee: customers are forbidden, not deleted"
    return str(doc["FForbidStatus"])


def push_remove(demo: Demo, hub: Hub, record: dict) -> None:
    receiver = WebhookReceiver(hub.config.hub.serve.webhooks, hub.store, router_from_config(hub.config.hub.pipelines))
    raw = json.dumps({"op": "data_remove", "data": record}, ensure_ascii=False).encode("utf-8")
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    sig = hashlib.sha1(f"{nonce}:{raw.decode('utf-8')}:{SECRET}:{ts}".encode()).hexdigest()
    with TestClient(Starlette(routes=receiver.routes())) as client:
        answer = client.post("/webhooks/jdy", params={"timestamp": ts, "nonce": nonce}, content=raw,
                             headers={"X-JDY-Signature": sig, "X-JDY-DeliverId": uuid.uuid4().hex,
                                      "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("on_delete", ["deactivate", "ignore"])
def test_a_data_remove_push_forbids_the_erp_customer(demo: Demo, on_delete: str) -> None:
    configure(demo, on_delete)
    first = seed_and_sync(demo, 2)[0]
    removed = demo.crm.state.get("customer_form", first)
    demo.crm.state.delete("customer_form", first)
    with demo.hub() as hub:
        push_remove(demo, hub, removed)
        result = InboxWorker(hub.store, hub.pipeline, redact=hub.redactor()).run_once()
        assert result.delivered == 1 and not result.errors
    assert forbid_status(demo, "CUS-DEL000") == ("B" if on_delete == "deactivate" else "A")
    assert forbid_status(demo, "CUS-DEL001") == "A"  # the other customer is untouched


def test_reconcile_repair_applies_on_delete_to_extras_and_then_agrees(demo: Demo) -> None:
    configure(demo, "deactivate")
    ids = seed_and_sync(demo, 3)
    demo.crm.state.delete("customer_form", ids[2])
    runner = CliRunner(env=demo.environ)
    args = ["reconcile", PIPELINE, "--json", "--config", str(demo.config)]
    found = runner.invoke(app, args)
    assert found.exit_code == 1
    assert [(i["key"], i["kind"]) for i in json.loads(found.stdout)["items"]] == [("CUS-DEL002", "extra")]
    repaired = runner.invoke(app, [*args, "--repair"])
    assert repaired.exit_code == 0, repaired.stdout
    assert json.loads(repaired.stdout)["repaired"] == 1
    assert forbid_status(demo, "CUS-DEL002") == "B"
    assert [forbid_status(demo, f"CUS-DEL00{i}") for i in (0, 1)] == ["A", "A"]
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout)["items"] == []


def test_on_delete_a_target_cannot_take_is_refused_at_validate(demo: Demo) -> None:
    text = demo.config.read_text(encoding="utf-8").replace(
        "    schedule: \"0 * * * *\"\n", "    schedule: \"0 * * * *\"\n    on_delete: deactivate\n", 1)
    demo.config.write_text(text, encoding="utf-8")
    result = CliRunner(env=demo.environ).invoke(app, ["validate", "--config", str(demo.config)])
    assert result.exit_code == 2
    assert "pipelines.erp_receipts_to_crm.on_delete" in result.output
    assert "'crm' payment can take delete" in result.output, result.output


def test_kingdee_sandbox_forbids_like_the_vendor(demo: Demo) -> None:
    seed_and_sync(demo, 1)
    with demo.hub() as hub:
        erp = hub.connector("erp")
        target = erp.lookup("customer", ["CUS-DEL000"])["CUS-DEL000"]
        [done] = erp.delete("customer", [target], mode="delete")  # type: ignore[attr-defined]
        [again] = erp.delete("customer", [target], mode="deactivate")  # type: ignore[attr-defined]
        [gone] = erp.delete("customer", ["999999"], mode="deactivate")  # type: ignore[attr-defined]
        assert erp.delete_modes("sales_order") == frozenset()  # type: ignore[attr-defined]
    assert done.ok and again.ok, "forbidding twice is done, not an error"
    assert not gone.ok and gone.error is not None and "不存在" in gone.error.message
    assert forbid_status(demo, "CUS-DEL000") == "B"
    assert load_config(demo.config, environ=demo.environ)  # the config itself stayed valid


def test_jiandaoyun_deletes_records_for_on_delete_delete(demo: Demo) -> None:
    kept = demo.crm.state.insert_plain("customer_form", customer("CUS-JD1", "留下的客户"))
    gone = demo.crm.state.insert_plain("customer_form", customer("CUS-JD2", "删掉的客户"))
    with demo.hub() as hub:
        crm = hub.connector("crm")
        assert crm.delete_modes("customer") == frozenset({"delete"})  # type: ignore[attr-defined]
        [done] = crm.delete("customer", [gone], mode="delete")  # type: ignore[attr-defined]
        [again] = crm.delete("customer", [gone], mode="delete")  # type: ignore[attr-defined]
    assert done.ok and again.ok, "a record already gone counts as deleted"
    assert [r["_id"] for r in demo.crm.state.all("customer_form")] == [kept]
