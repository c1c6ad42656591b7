"""CLI conventions: --version, help without `<bool>`, tables at 80 columns, and the dead-letter audit."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

import erphub.cli.output as output
from erphub.cli.main import app
from erphub.store import NewDeadLetter, Store
from tests.unit.cli.bad_inputs import BASE_CONFIG, BASE_MAPPING, ENV, Case, write_deployment

runner = CliRunner()


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer 0.29 carries its own copy of click)
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_version_and_help_without_bool_after_flags() -> None:
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("erphub ")
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 15
    for command in commands:
        shown = runner.invoke(app, [*command, "--help"], terminal_width=80)
        assert shown.exit_code == 0, command
        assert "<bool>" not in shown.stdout, (command, shown.stdout)


def test_the_runs_table_fits_80_columns_and_keeps_the_whole_pipeline_name(monkeypatch: pytest.MonkeyPatch) -> None:
    narrow = Console(width=80, record=True)
    monkeypatch.setattr(output, "out", narrow)
    name = "crm_customers_to_erp"
    long_name = "crm_customers_to_erp_with_a_much_longer_name_than_usual"
    counts = {"read": 123456, "created": 40, "updated": 3, "unchanged": 70, "skipped": 5, "dead_lettered": 2}
    narrow.print(output.results_table([{"pipeline": n, "status": "success", "counts": counts, "seconds": 1.5}
                                       for n in (name, long_name)]))
    text = narrow.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert name in text and "123456" in text and "success" in text and "DLQ" in text
    assert "…" not in text  # nothing cut: a long name folds onto a second line
    wide = Console(width=200, record=True)
    wide.print(output.results_table([{"pipeline": name, "status": "success", "counts": counts, "seconds": 1.5}],
                                    wide=True))
    shown = wide.export_text()
    assert "unchanged" in shown and "seconds" in shown


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    root = tmp_path / "deployment"
    write_deployment(root, Case("base", [], files={"config/hub.yaml": BASE_CONFIG,
                                                   "mappings/pair/customer.yaml": BASE_MAPPING}))
    config = root / "config" / "hub.yaml"
    (root / "state").mkdir()
    store = Store(f"sqlite:///{root / 'state' / 'hub.db'}")
    now = datetime.now(UTC)
    with store.session() as session, session.begin():
        store._write_dead_letters(session, "customers", "run-1", [
            NewDeadLetter(source_id=f"customer-{i:04d}-{'x' * 30}", source_payload={"code": i}, mapped_payload=None,
                          stage="map", error_class="permanent", error_code="lookup_missing",
                          message=f"code {i} not found") for i in range(5)], now)
    store.close()
    return config


def test_dlq_list_says_when_it_truncated_and_keeps_ids_whole_at_80_columns(deployment: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    narrow = Console(width=80, record=True)
    monkeypatch.setattr("erphub.cli.dlq.out", narrow)
    monkeypatch.setattr(output, "out", narrow)
    result = runner.invoke(app, ["dlq", "list", "--limit", "3", "--config", str(deployment)], env=ENV)
    assert result.exit_code == 0, result.output
    assert "showing the first 3" in result.stderr
    text = narrow.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert all(f"customer-{i:04d}-{'x' * 30}" in text for i in range(3)) and "…" not in text
    every = runner.invoke(app, ["dlq", "list", "--json", "--config", str(deployment)], env=ENV)
    assert len(json.loads(every.stdout)) == 5 and "showing" not in every.stderr


def test_discard_needs_a_reason_and_show_prints_who_discarded_and_why(deployment: Path) -> None:
    refused = runner.invoke(app, ["dlq", "discard", "1", "--config", str(deployment)], env=ENV)
    assert refused.exit_code == 2 and "--reason" in refused.stderr
    done = runner.invoke(app, ["dlq", "discard", "1", "2", "--reason", "test orders, never real",
                               "--config", str(deployment), "--json"], env=ENV)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["discarded"] == [1, 2]
    shown = json.loads(runner.invoke(app, ["dlq", "show", "1", "--json", "--config", str(deployment)],
                                     env=ENV).stdout)
    assert shown["status"] == "discarded"
    assert [(a["action"], a["reason"], a["operator"]) for a in shown["audit"]] == [
        ("discarded", "test orders, never real", getpass.getuser())]


def test_systems_check_json_is_only_json_and_names_host_and_port(tmp_path: Path) -> None:
    text = BASE_CONFIG.replace('settings: {base_url: "https://api.jiandaoyun.com", app_id: a1}',
                               'settings: {base_url: "http://127.0.0.1:9", app_id: a1}\n    retry: {max_attempts: 1}')
    root = tmp_path / "deployment"
    write_deployment(root, Case("closed port", [], files={"config/hub.yaml": text}))
    result = runner.invoke(app, ["systems", "check", "jdy", "--json", "--config", str(root / "config" / "hub.yaml")],
                           env=ENV)
    assert result.exit_code == 1, result.output
    (answer,) = json.loads(result.stdout)  # nothing but the JSON document on stdout
    assert answer["status"] == "failed" and "127.0.0.1:9" in answer["detail"]
    assert ENV["CRM_KEY"] not in result.output
