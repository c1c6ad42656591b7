"""The alert rules, their tests, Alertmanager config, runbook and dashboard agree with each other."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[3]
MON = REPO / "monitoring"
ALERT_NAMES = {
    "ErphubSyncFailing", "ErphubSyncStale", "ErphubDeadLettersGrowing", "ErphubDeadLettersUnattended",
    "ErphubThrottled", "ErphubAuthFailing", "ErphubWebhookRejected", "ErphubDown", "ErphubDrift",
}


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _yaml(MON / "alerts.yml")["groups"] for rule in group["rules"]]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required under CI=true (scripts/install_prometheus.sh)")
        pytest.skip(f"{name} not installed (scripts/install_prometheus.sh)")
    return path


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the markdown's headings."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_alert_has_severity_scope_annotations_and_a_runbook_section() -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} == ALERT_NAMES
    anchors = _anchors((MON / "RUNBOOK.md").read_text())
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == name.lower() and anchor in anchors, name
        if name != "ErphubDown":  # erphub itself: one alert per scrape target, not per pipeline
            assert re.search(r"by \((pipeline|system)\)", rule["expr"]) or '"system"' in rule["expr"], name
    severities = {r["alert"]: r["labels"]["severity"] for r in rules}
    assert severities["ErphubThrottled"] == "ticket"
    assert severities["ErphubSyncFailing"] == severities["ErphubSyncStale"] == "page"


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    tests = _yaml(MON / "alerts.test.yml")["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == ALERT_NAMES
    assert quiet == ALERT_NAMES


def test_runbook_tells_how_to_look_and_replay() -> None:
    text = (MON / "RUNBOOK.md").read_text()
    for command in ("erphub status", "erphub dlq list", "erphub dlq show", "erphub dlq replay",
                    "erphub run PIPELINE --since", "run_id"):
        assert command in text, command


def test_promtool_checks_and_unit_tests_pass() -> None:
    promtool = _tool("promtool")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run([promtool, *args], cwd=MON, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_config_routes_pages_and_tickets_apart() -> None:
    amtool = _tool("amtool")
    config = str(MON / "alertmanager.yml")
    check = subprocess.run([amtool, "check-config", config], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    receivers = {}
    for severity in ("page", "ticket"):
        out = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", f"severity={severity}"],
            capture_output=True, text=True, check=True,
        )
        receivers[severity] = out.stdout.strip()
    assert receivers["page"] != receivers["ticket"]
    inhibit = _yaml(MON / "alertmanager.yml")["inhibit_rules"]
    assert any("ErphubSyncFailing" in r["source_matchers"][0] and "ErphubSyncStale" in r["target_matchers"][0]
               and r["equal"] == ["pipeline"] for r in inhibit)


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MON / "grafana" / "erphub.json").read_text())
    return data


def test_dashboard_is_templated_on_pipeline_and_covers_the_issue() -> None:
    dash = _dashboard()
    assert "pipeline" in {v["name"] for v in dash["templating"]["list"]}
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    for metric in ("erphub_records_total", "erphub_runs_total", "erphub_dead_letters",
                   "erphub_last_success_timestamp_seconds", "erphub_http_requests_total",
                   "erphub_rate_limited_total"):
        assert metric in exprs, metric
    assert '$pipeline' in exprs and '$system' in exprs


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    grafana_vars = {"$pipeline": ".*", "$system": ".*", "$__rate_interval": "5m", "$__range": "1d"}
    rules = []
    for i, panel in enumerate(_dashboard()["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in grafana_vars.items():
                expr = expr.replace(var, value)
            rules.append({"record": f"dashboard:panel{i}:{target['refId']}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
