"""Two-way customers between a real Tryton server and a PostgreSQL staging table (a fresh database).

Tryton owns the party's name; the phone is two-way under `owner_wins` with Tryton the owner. Both sides
edit phones (one each, and one customer on both sides); the SQL → Tryton direction is SIGKILLed right
after Tryton applied its first party write of the batch (a proxy in front of the real server kills the
hub before the answer leaves), the Tryton → SQL direction runs before the killed one reruns, then
both run until quiet. The systems' own data (Tryton over its RPC as admin, PostgreSQL rows) then agree
per rule, nothing is duplicated, and one conflict is recorded: the customer both sides changed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from typer.testing import CliRunner

from erphub.cli.main import app
from erphub.config.loader import load_config
from erphub.engine import run_pipeline
from erphub.runtime import Hub
from erphub.sandbox.serve import SandboxServer
from tests.unit.engine.configs import customer_mapping

PIPELINES = ("erp_to_staging", "staging_to_erp")
CODES = ("TW-1", "TW-2", "TW-3", "TW-4")

ERP_TO_STAGING = customer_mapping("code", {"code": "code", "name": "name", "phone": "phone"})
STAGING_TO_ERP = customer_mapping("code", {"code": "code", "phone": "phone"})


class KillingProxy:
    """Forwards JSON-RPC to the real Tryton; kills the hub right after the n-th party write was applied."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.after_writes = 0  # 0 = disarmed
        self.pid: int | None = None
        self.writes_seen = 0
        self.kills = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.decode().lower() != "host"}
        async with httpx.AsyncClient(base_url=self.upstream, timeout=60) as client:
            response = await client.request(scope["method"], scope["path"], content=body, headers=headers)
        if b'"model.party.party.write"' in body:
            self.writes_seen += 1
            if self.after_writes and self.writes_seen >= self.after_writes and self.pid:
                os.kill(self.pid, signal.SIGKILL)  # applied by Tryton; the answer never leaves
                self.kills += 1
                self.after_writes = 0
                return
        out = [(k.encode(), v.encode()) for k, v in response.headers.items()
               if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")]
        out.append((b"content-length", str(len(response.content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": response.content})


@pytest.fixture
def tryton() -> Iterator[Any]:
    from tests.tryton_server import tryton_available, tryton_server

    if not tryton_available():
        if os.environ.get("CI") == "true":
            pytest.fail("Tryton is required under CI=true (make tryton installs it)")
        pytest.skip("Tryton is not installed (make tryton)")
    with tryton_server() as server:
        yield server


def write_config(tmp_path: Path, pg_url: str, table: str, tryton_url: str, server: Any) -> Path:
    (tmp_path / "erp_to_staging.yaml").write_text(ERP_TO_STAGING, encoding="utf-8")
    (tmp_path / "staging_to_erp.yaml").write_text(STAGING_TO_ERP, encoding="utf-8")
    two_way = "conflict_rule: owner_wins, owner: erp"
    path = tmp_path / "hub.yaml"
    path.write_text(f"""\
store: {{url: "sqlite:///{tmp_path / 'state.db'}"}}
systems:
  erp:
    connector: tryton
    settings: {{url: "{tryton_url}", database: {server.database}, login: {server.login}}}
    secrets: {{password: "${{env:TW_TRYTON_PASSWORD}}"}}
  staging:
    connector: sql
    settings:
      url: "{pg_url}"
      entities: {{customer: {{table: {table}, key_column: code}}}}
pipelines:
  erp_to_staging:
    source: {{system: erp, entity: customer}}
    target: {{system: staging, entity: customer}}
    mapping: erp_to_staging.yaml
    two_way: {{reverse: staging_to_erp, fields: {{phone: phone}}, {two_way}}}
  staging_to_erp:
    source: {{system: staging, entity: customer}}
    target: {{system: erp, entity: customer}}
    mapping: staging_to_erp.yaml
    create_missing: false
    two_way: {{reverse: erp_to_staging, fields: {{phone: phone}}, {two_way}}}
""", encoding="utf-8")
    return path


@pytest.mark.tryton
def test_tryton_and_postgresql_converge_after_edits_on_both_sides_and_a_kill(
        tmp_path: Path, tryton: Any, postgres_database: str) -> None:
    from tests.contract.harnesses.tryton import TrytonHarness

    admin = TrytonHarness(tryton)
    table = f"tw_customers_{uuid.uuid4().hex[:8]}"
    pg = sqlalchemy.create_engine(postgres_database)
    with pg.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (id SERIAL PRIMARY KEY, code TEXT NOT NULL UNIQUE, name TEXT, "
                             "phone TEXT, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    party_ids = dict(zip(CODES, admin.admin_call("model.party.party.create", [[
        {"code": code, "name": f"双向客户 {code}",
         "contact_mechanisms": [["create", [{"type": "phone", "value": f"021-6000000{n}"}]]]}
        for n, code in enumerate(CODES)]]), strict=True))

    def tryton_phone(code: str) -> str | None:
        rows = admin.admin_call("model.party.contact_mechanism.search_read",
                                [[["party", "=", party_ids[code]], ["type", "=", "phone"]], 0, None, None, ["value"]])
        return rows[0]["value"] if rows else None

    def tryton_edit_phone(code: str, value: str) -> None:
        [mechanism] = admin.admin_call("model.party.contact_mechanism.search",
                                       [[["party", "=", party_ids[code]], ["type", "=", "phone"]], 0, None, None])
        admin.admin_call("model.party.party.write",
                         [[party_ids[code]], {"contact_mechanisms": [["write", [mechanism], {"value": value}]]}])

    def pg_rows() -> dict[str, dict[str, Any]]:
        with pg.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT code, name, phone FROM {table}").mappings().all()
        return {row["code"]: dict(row) for row in rows if row["code"] in CODES}

    def pg_edit_phone(code: str, value: str) -> None:
        with pg.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {table} SET phone = %(p)s, updated_at = now() WHERE code = %(c)s",
                                 {"p": value, "c": code})

    proxy = KillingProxy(tryton.url)
    with SandboxServer(proxy) as front:
        config = write_config(tmp_path, postgres_database, table, front.base_url, tryton)
        env = {**os.environ, "TW_TRYTON_PASSWORD": tryton.password}

        def start(*pipelines: str) -> subprocess.Popen[str]:
            return subprocess.Popen([sys.executable, "-m", "erphub.cli", "run", *pipelines, "--engine", "plain",
                                     "--json", "--config", str(config)], env=env, cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def run(*pipelines: str) -> int:
            """In process (a process start costs more than the run); returns what was written."""
            with Hub(load_config(config, environ=env)) as hub:
                written = 0
                for name in pipelines:
                    info = run_pipeline(hub.pipeline(name), hub.store)
                    assert info.status == "success", info
                    written += info.counts["created"] + info.counts["updated"]
                return written

        validated = CliRunner(env=env).invoke(app, ["validate", "--config", str(config)])
        assert validated.exit_code == 0, validated.output
        run(*PIPELINES)
        run(*PIPELINES)
        assert {code: row["phone"] for code, row in pg_rows().items()} == {
            code: f"021-6000000{n}" for n, code in enumerate(CODES)}

        tryton_edit_phone("TW-1", "021-61111111")        # Tryton only
        pg_edit_phone("TW-2", "021-62222222")            # staging only
        pg_edit_phone("TW-4", "021-64444444")            # staging only
        tryton_edit_phone("TW-3", "021-63333333")        # both: Tryton owns the phone under owner_wins
        pg_edit_phone("TW-3", "021-69999999")

        proxy.after_writes = proxy.writes_seen + 1       # the first party write of the staging batch
        process = start("staging_to_erp")
        proxy.pid = process.pid
        process.communicate(timeout=300)
        assert process.returncode == -signal.SIGKILL and proxy.kills == 1

        run("erp_to_staging")                             # the other direction, before the killed one reruns
        run(*PIPELINES)
        run(*PIPELINES)
        assert run(*PIPELINES) == 0, "a quiet pass writes nothing"

        expected = {"TW-1": "021-61111111", "TW-2": "021-62222222", "TW-3": "021-63333333", "TW-4": "021-64444444"}
        rows = pg_rows()
        assert {code: row["phone"] for code, row in rows.items()} == expected
        assert {code: tryton_phone(code) for code in CODES} == expected
        assert {code: row["name"] for code, row in rows.items()} == {code: f"双向客户 {code}" for code in CODES}
        with pg.connect() as conn:
            count = f"SELECT count(*) FROM {table} WHERE code IN ('TW-1', 'TW-2', 'TW-3', 'TW-4')"
            assert conn.exec_driver_sql(count).scalar() == 4, "nothing duplicated in the staging table"
        assert admin.admin_call("model.party.party.search_count", [[["code", "in", list(CODES)]]]) == 4
        listed = CliRunner(env=env).invoke(app, ["conflicts", "list", "--status", "all", "--json",
                                                 "--config", str(config)])
        assert listed.exit_code == 0, listed.output
        conflicts = json.loads(listed.stdout)
        [conflict] = conflicts  # TW-3, which both sides changed
        assert (conflict["field"], conflict["rule"]) == ("phone", "owner_wins") and conflict["winner"] is not None
    pg.dispose()
