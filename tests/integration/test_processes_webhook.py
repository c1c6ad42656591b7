"""Process (a) in real time: a signed Jiandaoyun push to `erphub serve` creates the ERP customer at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from erphub import sandbox as sandboxes
from erphub.connectors.jiandaoyun import jiandaoyun_signature
from erphub.sandbox.serve import SandboxServer

ROOT = Path(__file__).resolve().parents[2]
PUSH_SECRET = "jdy-demo-push-secret-51Xk"  # config/demo.env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_pushed_won_opportunity_reaches_the_erp_and_the_number_comes_back(tmp_path: Path) -> None:
    crm, erp = sandboxes.create("jiandaoyun"), sandboxes.create("kingdee", seed_customers=0)
    code = "CUS-000777"
    crm.state.insert_plain("opportunity_form", {
        "opp_no": "OPP-2026-0777", "customer_code": code, "customer_name": "苏州工业园区星海光电有限公司",
        "credit_code": "91350100M000100Y43", "phone": "13912345678",
        "address": {"province": "江苏省", "city": "苏州市", "district": "工业园区", "detail": "星湖街88号"},
        "stage": "报价", "amount": 88000, "currency": "CNY", "salesperson": "S003", "erp_customer_no": ""})
    port = free_port()
    text = (ROOT / "config" / "processes.yaml").read_text(encoding="utf-8")
    text = text.replace("../mappings/", f"{ROOT}/mappings/").replace("[demo.env]", f"[{ROOT}/config/demo.env]")
    text = text.replace("sqlite:///../.erphub/processes.db", f"sqlite:///{tmp_path}/state.db")
    text = text.replace("port: 9464", f"port: {port}")
    config = tmp_path / "processes.yaml"
    config.write_text(text, encoding="utf-8")
    with SandboxServer(crm) as crm_server, SandboxServer(erp) as erp_server:
        env = {**os.environ, "ERPHUB_DEMO_JDY_URL": crm_server.base_url,
               "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"}
        serve = subprocess.Popen([sys.executable, "-m", "erphub.cli", "serve", "--no-schedules", "--config",
                                  str(config)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            def healthy() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    assert serve.poll() is None, serve.stderr.read().decode()[-2000:] if serve.stderr else ""
                    return False

            wait_for(healthy, "erphub serve")
            # The salesperson marks the opportunity won; Jiandaoyun pushes the record.
            [opp] = [r for r in crm.state.all("opportunity_form") if r["opp_no"] == "OPP-2026-0777"]
            crm.state.touch("opportunity_form", [opp["_id"]], changes={"stage": "赢单"})
            [opp] = [r for r in crm.state.all("opportunity_form") if r["opp_no"] == "OPP-2026-0777"]
            body = json.dumps({"op": "data_update", "data": opp}, ensure_ascii=False).encode()
            timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:12]
            headers = {"X-JDY-Signature": jiandaoyun_signature(body, PUSH_SECRET, timestamp, nonce),
                       "X-JDY-DeliverId": uuid.uuid4().hex, "Content-Type": "application/json"}
            url = f"{base}/webhooks/jdy_opportunities?timestamp={timestamp}&nonce={nonce}"
            assert httpx.post(url, content=body, headers=headers, timeout=5).status_code == 200

            created = wait_for(lambda: erp.state.store.by_number("BD_Customer", code), "the ERP customer")
            assert created["FName"] == "苏州工业园区星海光电有限公司"
            wait_for(lambda: [r for r in crm.state.all("opportunity_form")
                              if r["opp_no"] == "OPP-2026-0777" and r.get("erp_customer_no") == code],
                     "the ERP number written back to the opportunity")
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            assert 'erphub_webhook_events_total{outcome="accepted",source="jdy_opportunities"} 1.0' in metrics
        finally:
            serve.terminate()
            serve.wait(timeout=30)
