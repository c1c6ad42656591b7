"""Operator safety: the demo never touches a real deployment, and a deployment runs its own files.

Judged by the other side: the other deployment's store file (its bytes) and a stand-in for its
ERP that counts every request; the Kingdee sandbox's own orders after a replay.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from erphub import sandbox as sandboxes
from erphub.store import Store

ROOT = Path(__file__).resolve().parents[2]


class _Counter(BaseHTTPRequestHandler):
    hits = 0

    def _count(self) -> None:
        type(self).hits += 1
        self.send_response(503)
        self.end_headers()

    do_GET = do_POST = do_PUT = do_PATCH = _count

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def counting_erp() -> Iterator[type[_Counter]]:
    handler = type("Counter", (_Counter,), {"hits": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()


def _deployment(folder: Path, *, crm_url: str, erp_url: str) -> Path:
    """A deployment made from the demo config: its own store, its own mappings and lookups beside it."""
    (folder / "config").mkdir(parents=True)
    for sub in ("jiandaoyun_to_kingdee", "kingdee_to_jiandaoyun", "lookups"):
        target = folder / "mappings" / sub
        target.mkdir(parents=True)
        for file in (ROOT / "mappings" / sub).iterdir():
            if file.is_file():
                target.joinpath(file.name).write_bytes(file.read_bytes())
    (folder / "config" / "demo.env").write_bytes((ROOT / "config" / "demo.env").read_bytes())
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("${env:ERPHUB_DEMO_JDY_URL:-http://127.0.0.1:18601}", crm_url)
    text = text.replace("${env:ERPHUB_DEMO_KD_URL:-http://127.0.0.1:18602/k3cloud/}", erp_url)
    text = re.sub(r"url: sqlite:///\S+", "url: sqlite:///../state/prod.db", text)
    config = folder / "config" / "demo.yaml"
    config.write_text(text, encoding="utf-8")
    return config


def _erphub(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "erphub.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_the_demo_leaves_the_deployment_erphub_config_names_untouched(tmp_path: Path, counting_erp: type) -> None:
    prod = _deployment(tmp_path / "prod", crm_url=counting_erp.url, erp_url=f"{counting_erp.url}/k3cloud/")
    store_file = tmp_path / "prod" / "state" / "prod.db"
    store_file.parent.mkdir()
    Store(f"sqlite:///{store_file}").close()  # a real, migrated store with its own bytes
    before = store_file.read_bytes()
    elsewhere = tmp_path / "ops"
    elsewhere.mkdir()
    env = {**os.environ, "ERPHUB_CONFIG": str(prod), "PREFECT_HOME": str(tmp_path / "pf")}

    demo = _erphub("demo", "--engine", "plain", cwd=elsewhere, env=env)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "third run" in demo.stdout
    assert store_file.read_bytes() == before
    assert counting_erp.hits == 0
    # The demo's state is its own folder, and its files are the owner's only.
    demo_db = elsewhere / ".erphub" / "demo" / "demo.db"
    assert demo_db.is_file() and demo_db.stat().st_mode & 0o777 == 0o600
    assert (elsewhere / ".erphub" / "demo").stat().st_mode & 0o777 == 0o700

    refused = _erphub("demo", "--config", str(prod), cwd=elsewhere, env=env)
    assert refused.returncode == 2 and "--config" in refused.stderr and "Traceback" not in refused.stderr
    assert store_file.read_bytes() == before and counting_erp.hits == 0


def test_the_demo_deletes_no_store_it_did_not_make(tmp_path: Path) -> None:
    """A store at the demo's place that the demo did not make (no marker) is kept, and the demo stops."""
    foreign = tmp_path / ".erphub" / "demo" / "demo.db"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"someone else's data")
    result = _erphub("demo", "--engine", "plain", cwd=tmp_path, env={**os.environ, "PREFECT_HOME": str(tmp_path)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "did not make it" in result.stderr and "Traceback" not in result.stderr
    assert foreign.read_bytes() == b"someone else's data"


def test_a_deployment_replays_with_its_own_lookup_table(tmp_path: Path) -> None:
    """The deployment's lookups/ lacks P-9999, so orders naming it become dead letters; the operator
    adds the code to the deployment's own table and replays: the orders reach the ERP."""
    crm, erp = sandboxes.create("jiandaoyun"), sandboxes.create("kingdee", seed_customers=0)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        config = _deployment(tmp_path / "prod", crm_url=crm_server.base_url,
                             erp_url=f"{erp_server.base_url}/k3cloud/")
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / "pf")}
        env.pop("ERPHUB_CONFIG", None)
        cwd = tmp_path  # not the deployment's folder: paths resolve from the config, not the cwd
        run = _erphub("run", "crm_customers_to_erp", "crm_orders_to_erp", "--engine", "plain", "--json",
                      "--config", str(config), cwd=cwd, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        listed = _erphub("dlq", "list", "--pipeline", "crm_orders_to_erp", "--json", "--config", str(config),
                         cwd=cwd, env=env)
        letters = [row for row in json.loads(listed.stdout) if "P-9999" in row["message"]]
        assert letters, listed.stdout
        orders_before = len(erp.state.store.docs["SAL_SaleOrder"])

        table = tmp_path / "prod" / "mappings" / "lookups" / "material_codes.csv"
        table.write_text(table.read_text(encoding="utf-8") + "P-9999,1.01.001,替代料\n", encoding="utf-8")
        checked = _erphub("validate", "--config", str(config), cwd=cwd, env=env)
        assert checked.returncode == 0, checked.stderr
        replay = _erphub("dlq", "replay", *(str(row["id"]) for row in letters), "--json", "--config", str(config),
                         cwd=cwd, env=env)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        reopened = _erphub("dlq", "list", "--pipeline", "crm_orders_to_erp", "--json", "--config", str(config),
                           cwd=cwd, env=env)
        assert not [row for row in json.loads(reopened.stdout) if "P-9999" in row["message"]]
        assert len(erp.state.store.docs["SAL_SaleOrder"]) == orders_before + len(letters)  # the ERP has them now
