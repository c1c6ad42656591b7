"""A canary secret configured for a system appears in no log line, metric, dead letter, run or exception."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from erphub import sandbox as sandboxes
from erphub.config.loader import load_config
from erphub.core.errors import RunFailed
from erphub.engine import run_pipeline
from erphub.monitoring.logging import configure_logging
from erphub.monitoring.metrics import REGISTRY
from erphub.runtime import Hub

ROOT = Path(__file__).resolve().parents[2]
CANARY = "canary-Zq9fX3-hub-secret-0042"


def demo_config(tmp_path: Path) -> Path:
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("../mappings/", f"{ROOT}/mappings/").replace("env_files: [demo.env]\n", "")
    text = text.replace("sqlite:///../.erphub/demo/demo.db", f"sqlite:///{tmp_path}/state.db")
    text = text.replace("retry: {max_attempts: 5, max_seconds: 30}", "retry: {max_attempts: 2, max_seconds: 3}")
    path = tmp_path / "hub.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("server_key", [CANARY, "a-different-key-the-server-expects"])
def test_canary_secret_never_leaks(tmp_path: Path, server_key: str) -> None:
    crm, erp = sandboxes.create("jiandaoyun", api_key=server_key), sandboxes.create("kingdee", seed_customers=1)
    logs = io.StringIO()
    with crm.serve() as crm_server, erp.serve() as erp_server:
        loaded = load_config(demo_config(tmp_path), environ={
            "ERPHUB_DEMO_JDY_API_KEY": CANARY, "ERPHUB_DEMO_KD_PASSWORD": "Kd#Demo-2026",
            "ERPHUB_DEMO_JDY_URL": crm_server.base_url, "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/"})
        configure_logging(fmt="json", level="DEBUG", secrets=loaded.secret_values, stream=logs)
        texts: list[str] = []
        with Hub(loaded) as hub:
            for name in ("crm_customers_to_erp", "crm_orders_to_erp"):
                try:
                    info = run_pipeline(hub.pipeline(name), hub.store)
                    assert server_key == CANARY and info.status == "success"
                except RunFailed as exc:
                    assert server_key != CANARY, "only the wrong key may fail"
                    texts.append(str(exc))
                    texts.append(repr(exc.cause))
            letters = hub.store.list_dead_letters(status=None, limit=10_000)
            texts.extend(json.dumps(letter.as_dict(), ensure_ascii=False) for letter in letters)
            texts.extend(json.dumps(run.as_dict(), ensure_ascii=False) for name in hub.config.hub.pipelines
                         for run in hub.store.recent_runs(name, 50))
            report = []
            for system in ("crm", "erp"):
                try:
                    hub.connector(system).check()
                except Exception as exc:  # the failing case: the reason must still be secret-free
                    report.append(f"{exc!r} {exc}")
            texts.extend(report)
    logging.getLogger().handlers.clear()
    captured = logs.getvalue()
    assert captured, "the runs must have logged something"
    texts.append(captured)
    texts.append(generate_latest(REGISTRY).decode())
    if server_key == CANARY:
        assert any('"run finished"' in line or "run finished" in line for line in captured.splitlines())
    else:
        assert "401" in captured or "auth" in captured.lower()
    for text in texts:
        assert CANARY not in text
