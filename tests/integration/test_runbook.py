"""Every command in monitoring/RUNBOOK.md's code blocks, run with bash against a live demo hub in the
failure its section describes, ends as the runbook says (`# exit N`) and prints what it says to look
for (`look for: TEXT`, a regular expression). Commands marked `needs: WHAT` are skipped by that name,
and only for the names in `SKIPPABLE`.

The hub: Jiandaoyun and Kingdee sandboxes on loopback, a staging SQLite table, `erphub serve
--no-schedules` (webhooks and /metrics on their own ports) and a log file. Its failures, all at once:
a wrong Kingdee password (auth_customers), a mapping that rejects every record (rejected_customers),
a CRM answering 429 to every read (throttled_customers), eight webhook deliveries with a bad
signature, a scheduled pipeline that never ran, and a staging table emptied after a healthy run (the
drift ErphubDrift's commands find and repair; emptied once more for the restored-target section).
Fix blocks run after the test applies the section's fix (the right password, the corrected mapping).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from erphub.sandbox.serve import SandboxServer
from tests.integration.test_alerts_live import (
    CONFIG,
    REJECTING_MAPPING,
    STAGING_MAPPING,
    _free_port,
    create_staging_tables,
)

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "monitoring" / "RUNBOOK.md"
SKIPPABLE = {"systemd": "no systemd unit or journal in the test"}
BIN = Path(sys.executable).parent


@dataclass
class Command:
    section: str
    block: int          # index of the code block within its section
    line: str           # the command, placeholders unfilled
    exit_code: int = 0
    look_for: str | None = None
    needs: str | None = None


@dataclass
class Section:
    title: str
    blocks: list[list[Command]] = field(default_factory=list)


ANNOTATION = re.compile(r"\s+#\s*(?P<note>(exit \d+|look for:|needs:).*)$")


def parse_runbook(text: str) -> dict[str, Section]:
    sections: dict[str, Section] = {}
    current = Section("preamble")
    sections[current.title] = current
    in_block = False
    for raw in text.splitlines():
        if not in_block and raw.startswith("## "):
            current = Section(raw[3:].strip())
            sections[current.title] = current
        elif raw.startswith("```"):
            in_block = not in_block and raw.strip() == "```bash"
            if in_block:
                current.blocks.append([])
        elif in_block and raw.strip() and not raw.lstrip().startswith("#"):
            command = Command(current.title, len(current.blocks) - 1, raw.strip())
            match = ANNOTATION.search(raw)
            if match:
                command.line = raw[:match.start()].strip()
                for part in (p.strip() for p in match.group("note").split(";")):
                    if part.startswith("exit "):
                        command.exit_code = int(part[5:])
                    elif part.startswith("look for:"):
                        command.look_for = part[len("look for:"):].strip()
                    elif part.startswith("needs:"):
                        command.needs = part[len("needs:"):].strip()
            current.blocks[-1].append(command)
    return sections


def test_the_parser_reads_exit_look_for_and_needs() -> None:
    [section] = [s for s in parse_runbook(
        "## X\n```bash\nerphub status   # exit 1; look for: failed\nsystemctl x   # needs: systemd\n"
        "# a comment\n```\n```text\nnot a command\n```\n").values() if s.title == "X"]
    [[status, systemctl]] = section.blocks
    assert (status.line, status.exit_code, status.look_for) == ("erphub status", 1, "failed")
    assert (systemctl.line, systemctl.needs) == ("systemctl x", "systemd")


class DemoHub:
    def __init__(self, tmp: Path, env: dict[str, str], port: int, metrics_port: int) -> None:
        self.tmp, self.env, self.port, self.metrics_port = tmp, env, port, metrics_port
        self.store = sa.create_engine(f"sqlite:///{tmp}/state.db")
        self.serve: subprocess.Popen[bytes] | None = None

    def erphub(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "erphub"), *args], env=self.env, cwd=self.tmp, capture_output=True,
                              text=True, timeout=120)

    def scalar(self, sql: str, **params: object) -> object:
        with self.store.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def bash(self, line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-o", "pipefail", "-c", line], env=self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=120)


def _bad_delivery(port: int, n: int) -> None:
    raw = json.dumps({"id": f"evt-{n}"}).encode()
    ts = str(int(time.time()))
    sig = hmac.new(b"rotated", ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    httpx.post(f"http://127.0.0.1:{port}/webhooks/shop", content=raw, timeout=5,
               headers={"X-Timestamp": ts, "X-Signature": f"sha256={sig}", "X-Delivery-Id": f"d-{n}"})


def test_every_runbook_command_works_against_a_live_demo_in_its_failure(tmp_path: Path) -> None:
    from erphub import sandbox as sandboxes

    sections = parse_runbook(RUNBOOK.read_text(encoding="utf-8"))
    staging = sa.create_engine(f"sqlite:///{tmp_path}/staging.db")
    with staging.begin() as conn:
        create_staging_tables(conn)
    (tmp_path / "staging_customer.yaml").write_text(STAGING_MAPPING, encoding="utf-8")
    (tmp_path / "rejecting_customer.yaml").write_text(REJECTING_MAPPING, encoding="utf-8")
    crm = sandboxes.create("jiandaoyun", api_key="live-jdy-key")
    slow = sandboxes.create("jiandaoyun", api_key="live-jdy-key")
    slow.faults.set("data/list", burst_429=10_000, retry_after=0.1)
    erp = sandboxes.create("kingdee")
    port, metrics_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERPHUB_", "PROMETHEUS_", "PREFECT_API"))}
    env.update({"LIVE_JDY_KEY": "live-jdy-key", "LIVE_KD_PASSWORD": "not-the-password",
                "LIVE_WEBHOOK_SECRET": "runbook-webhook-secret", "PATH": f"{BIN}:{env.get('PATH', '')}"})
    with SandboxServer(crm) as crm_server, SandboxServer(slow) as slow_server, SandboxServer(erp) as erp_server:
        config = tmp_path / "hub.yaml"
        config.write_text(CONFIG.format(tmp=tmp_path, port=port, metrics_port=metrics_port, repo=REPO,
                                        crm_url=crm_server.base_url, slow_url=slow_server.base_url,
                                        erp_url=erp_server.base_url, yearly="0 0 1 1 *"), encoding="utf-8")
        env["ERPHUB_CONFIG"] = str(config)
        hub = DemoHub(tmp_path, env, port, metrics_port)
        serve = subprocess.Popen([str(BIN / "erphub"), "serve", "--no-schedules", "--log-format", "json"], env=env,
                                 cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _run_every_section(hub, sections, serve, staging)
        finally:
            if serve.poll() is None:
                serve.send_signal(signal.SIGTERM)
                serve.wait(30)


def _run_every_section(hub: DemoHub, sections: dict[str, Section], serve: subprocess.Popen[bytes],
                       staging: sa.Engine) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{hub.port}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert serve.poll() is None and time.monotonic() < deadline, "erphub serve did not come up"
        time.sleep(0.2)
    # The failures (and one healthy run, whose target is emptied afterwards).
    runs = hub.erphub("run", "auth_customers", "throttled_customers", "rejected_customers", "healthy_customers",
                      "--engine", "plain", "--json")
    assert runs.returncode == 1, runs.stderr[-2000:]
    run_ids = {r["pipeline"]: r["run_id"] for r in json.loads(runs.stdout)}
    for n in range(8):
        _bad_delivery(hub.port, n)
    with staging.begin() as conn:
        conn.exec_driver_sql("DELETE FROM stg_customer")
    dead_letter = str(hub.scalar("select min(id) from erphub_dead_letters where pipeline='rejected_customers'"))

    common = {"LOG_FILE": str(hub.tmp / "logs" / "erphub.log"), "METRICS": f"127.0.0.1:{hub.metrics_port}",
              "WEBHOOKS": f"127.0.0.1:{hub.port}", "ID": dead_letter}

    def fix_mapping() -> None:
        (hub.tmp / "rejecting_customer.yaml").write_text(STAGING_MAPPING, encoding="utf-8")

    def fix_password() -> None:
        hub.env["LIVE_KD_PASSWORD"] = "Kd#Demo-2026"  # the sandbox's demo password

    def empty_target() -> None:  # restored from a backup taken before the first run: the table is empty again
        with staging.begin() as conn:
            conn.exec_driver_sql("DELETE FROM stg_customer")

    def stop_serve() -> None:
        serve.send_signal(signal.SIGKILL)
        serve.wait(10)

    # (section, its placeholders, what the test does before the section's blocks after the first)
    plan: list[tuple[str, dict[str, str], Callable[[], None] | None, Callable[[], None] | None]] = [
        ("Before you start", {"PIPELINE": "auth_customers", "RUN_ID": run_ids["auth_customers"]}, None, None),
        ("ErphubSyncFailing", {"PIPELINE": "auth_customers", "RUN_ID": run_ids["auth_customers"]}, None, None),
        ("ErphubSyncStale", {"PIPELINE": "never_customers"}, None, None),
        ("ErphubDrift", {"PIPELINE": "healthy_customers"}, None, None),
        ("A target was restored from backup or emptied", {"PIPELINE": "healthy_customers"}, empty_target, None),
        ("ErphubDeadLettersUnattended", {"PIPELINE": "rejected_customers"}, None, None),
        ("ErphubDeadLettersGrowing", {"PIPELINE": "rejected_customers"}, None, fix_mapping),
        ("ErphubThrottled", {"SYSTEM": "crm_slow"}, None, None),
        ("ErphubWebhookRejected", {"SOURCE": "shop"}, None, None),
        ("ErphubAuthFailing", {"SYSTEM": "erp", "PIPELINE": "auth_customers"}, None, fix_password),
        ("ErphubDown", {}, stop_serve, None),
    ]
    assert {title for title, *_ in plan} | {"preamble"} >= {t for t, s in sections.items() if s.blocks}, \
        "a runbook section with commands has no failure scenario in this test"
    ran, skipped = 0, []
    for title, values, before, between in plan:
        if before is not None:
            before()
        for index, block in enumerate(sections[title].blocks):
            if index == 1 and between is not None:
                between()
            for command in block:
                if command.needs is not None:
                    assert command.needs in SKIPPABLE, f"{title}: {command.line}: unknown need {command.needs}"
                    skipped.append(command.line)
                    continue
                line = command.line
                for name, value in {**common, **values}.items():
                    line = re.sub(rf"\b{name}\b", value, line)
                look_for = command.look_for
                if look_for:
                    for name, value in {**common, **values}.items():
                        look_for = re.sub(rf"\b{name}\b", re.escape(value), look_for)
                result = hub.bash(line)
                where = f"[{title}] {line}\nexit {result.returncode}\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
                assert result.returncode == command.exit_code, where
                if look_for:
                    assert re.search(look_for, result.stdout + result.stderr, re.MULTILINE), where
                ran += 1
    assert ran >= 25 and len(skipped) == 3, (ran, skipped)
