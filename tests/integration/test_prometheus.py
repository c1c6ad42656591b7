"""What the live Prometheus tests share: the binaries, free ports, the rules with `for: 0s`, and a
running Prometheus to query.

The rules are monitoring/alerts.yml with every `for:` shortened to 0s (a copy written for the test;
the real file is never edited), scrape and evaluation every second, resend delay 1s. The test that
drives every alert (ErphubSyncFailing among them) is tests/integration/test_alerts_live.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "monitoring" / "alerts.yml"
IN_CI = os.environ.get("CI") == "true"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (scripts/install_prometheus.sh installs it)"
        if IN_CI:
            pytest.fail(message + "; required under CI=true")
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fast_rules(src: Path, dst: Path) -> None:
    """alerts.yml with `for: 0s` everywhere, so the live test needs no minutes of waiting."""
    yaml = YAML()
    doc: Any = yaml.load(src.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    with dst.open("w") as fh:
        yaml.dump(doc, fh)


@dataclass
class RunningPrometheus:
    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def wait_for(self, check: Any, what: str, timeout_s: float = 30) -> Any:
        """Poll *check* until it returns something truthy; fail with Prometheus's log if it dies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                result = check()
            except httpx.HTTPError:
                result = None
            if result:
                return result
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}; prometheus log: {self.log_path.read_text()[-2000:]}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(self.base_url + "/api/v1/query", params={"query": promql}, timeout=2)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = httpx.get(self.base_url + "/api/v1/alerts", timeout=2).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]
