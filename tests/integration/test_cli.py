"""The `erphub` CLI through a subprocess, against the Jiandaoyun and Kingdee sandboxes on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from erphub import sandbox as sandboxes
from tests.prefect_template import seed_prefect_home

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    config: Path
    environ: dict[str, str]
    crm: object
    erp: object


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[Env]:
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("../mappings/", f"{ROOT}/mappings/").replace("[demo.env]", f"[{ROOT}/config/demo.env]")
    text = text.replace("sqlite:///../.erphub/demo/demo.db", f"sqlite:///{tmp_path}/state.db")
    config = tmp_path / "hub.yaml"
    config.write_text(text, encoding="utf-8")
    crm, erp = sandboxes.create("jiandaoyun"), sandboxes.create("kingdee", seed_customers=0)
    with crm.serve() as crm_server, erp.serve() as erp_server:
        environ = {**os.environ, "ERPHUB_DEMO_JDY_URL": crm_server.base_url,
                   "ERPHUB_DEMO_KD_URL": f"{erp_server.base_url}/k3cloud/", "PREFECT_HOME": str(tmp_path / "pf")}
        yield Env(config, environ, crm, erp)


def erphub(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "erphub.cli", *args, "--config", str(env.config)],
                          capture_output=True, text=True, env=env.environ, cwd=env.config.parent, timeout=300)


def test_validate_accepts_the_demo_config_and_names_the_line_of_a_broken_one(demo_env: Env) -> None:
    ok = erphub(demo_env, "validate", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["pipelines"] == ["crm_customers_to_erp", "crm_orders_to_erp", "erp_receipts_to_crm"]

    lines = demo_env.config.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines, 1) if "schedule:" in line) + 1  # crm_customers_to_erp's
    lines.insert(number - 1, "    batch_size: fifty")
    demo_env.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    broken = erphub(demo_env, "validate")
    assert broken.returncode == 2
    assert f"{demo_env.config}:{number}:" in broken.stderr
    assert "pipelines.crm_customers_to_erp.batch_size" in broken.stderr
    assert "Traceback" not in broken.stderr + broken.stdout


def test_a_mapping_error_is_reported_with_the_mapping_file_and_line(demo_env: Env, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: customer\ntarget: customer\nkey: FNumber\nfields:\n  FNumber:\n    from: customer_code\n"
                   "    transforms: [no_such_transform]\n", encoding="utf-8")
    text = demo_env.config.read_text(encoding="utf-8")
    demo_env.config.write_text(text.replace(f"{ROOT}/mappings/jiandaoyun_to_kingdee/customer.yaml", str(bad)),
                               encoding="utf-8")
    result = erphub(demo_env, "validate")
    assert result.returncode == 2
    assert f"{bad}:7:" in result.stderr and "no_such_transform" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_status_and_dead_letters_end_to_end(demo_env: Env) -> None:
    first = erphub(demo_env, "run", "crm_customers_to_erp", "crm_orders_to_erp", "--engine", "plain", "--json")
    assert first.returncode == 0, first.stderr
    runs = {r["pipeline"]: r for r in json.loads(first.stdout)}
    customers = runs["crm_customers_to_erp"]["counts"]
    assert customers["read"] == customers["created"] + customers["skipped"] + customers["dead_lettered"]
    assert customers["created"] > 30 and customers["dead_lettered"] >= 1

    again = erphub(demo_env, "run", "--all", "--engine", "plain", "--json")
    assert again.returncode == 0, again.stderr
    assert {r["pipeline"]: r["counts"]["created"] for r in json.loads(again.stdout)}["crm_customers_to_erp"] == 0

    status = json.loads(erphub(demo_env, "status", "--json").stdout)
    by_name = {p["pipeline"]: p for p in status["pipelines"]}
    assert by_name["crm_customers_to_erp"]["last_run"]["status"] == "success"
    assert by_name["crm_customers_to_erp"]["cursor"] is not None
    open_letters = json.loads(erphub(demo_env, "dlq", "list", "--json").stdout)
    assert sum(p["open_dead_letters"] for p in status["pipelines"]) == len(open_letters) > 0

    letter = open_letters[0]
    shown = json.loads(erphub(demo_env, "dlq", "show", str(letter["id"]), "--json").stdout)
    assert shown["source_payload"] and shown["stage"] in ("map", "write") and shown["message"]
    discarded = erphub(demo_env, "dlq", "discard", str(letter["id"]), "--reason", "test order", "--json")
    assert discarded.returncode == 0 and json.loads(discarded.stdout)["discarded"] == [letter["id"]]
    assert erphub(demo_env, "dlq", "discard", str(letter["id"]), "--reason", "again").returncode == 2

    replay = erphub(demo_env, "dlq", "replay", "--pipeline", "crm_orders_to_erp", "--json")
    # Nothing was fixed, so the letters stay open: replay says so and exits 1.
    assert replay.returncode == 1, replay.stderr
    [outcome] = json.loads(replay.stdout)
    assert outcome["status"] == "failed" and outcome["failed"] == outcome["letters"] > 0
    still_open = json.loads(erphub(demo_env, "dlq", "list", "--pipeline", "crm_orders_to_erp", "--json").stdout)
    assert all(d["attempts"] >= 2 for d in still_open)  # the same records fail again, counted, not duplicated


def test_a_run_whose_target_is_down_exits_1_and_usage_errors_exit_2(demo_env: Env) -> None:
    demo_env.environ["ERPHUB_DEMO_KD_URL"] = "http://127.0.0.1:9/k3cloud/"  # nothing listens on the discard port
    text = demo_env.config.read_text(encoding="utf-8").replace("retry: {max_attempts: 5, max_seconds: 30}",
                                                                "retry: {max_attempts: 2, max_seconds: 2}")
    demo_env.config.write_text(text, encoding="utf-8")
    down = erphub(demo_env, "run", "crm_customers_to_erp", "--engine", "plain", "--json")
    assert down.returncode == 1
    assert json.loads(down.stdout)[0]["status"] == "failed"
    assert erphub(demo_env, "run", "no_such_pipeline").returncode == 2
    assert erphub(demo_env, "run").returncode == 2
    assert erphub(demo_env, "run", "crm_orders_to_erp", "--since", "yesterday").returncode == 2


@pytest.mark.prefect
def test_run_through_the_embedded_prefect_flow(demo_env: Env, prefect_db_template: Path) -> None:
    seed_prefect_home(Path(demo_env.environ["PREFECT_HOME"]), prefect_db_template)  # migrated: starts sooner
    result = erphub(demo_env, "run", "crm_orders_to_erp", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)[0]["counts"]["read"] == 40


def test_systems_check_reports_ok_or_the_reason_without_the_secret(demo_env: Env) -> None:
    ok = erphub(demo_env, "systems", "check", "--json")
    assert ok.returncode == 0, ok.stderr
    assert {r["system"]: r["status"] for r in json.loads(ok.stdout)} == {"crm": "ok", "erp": "ok"}

    demo_env.environ["ERPHUB_DEMO_JDY_API_KEY"] = "wrong-key-3f9a7c1d"
    bad = erphub(demo_env, "systems", "check", "crm", "--json")
    assert bad.returncode == 1
    [report] = json.loads(bad.stdout)
    assert report["status"] == "failed" and report["detail"]
    assert "wrong-key-3f9a7c1d" not in bad.stdout + bad.stderr


def test_backfill_window_and_full_resync_write_only_what_differs(demo_env: Env) -> None:
    first = erphub(demo_env, "run", "crm_customers_to_erp", "--engine", "plain", "--json")
    assert first.returncode == 0, first.stderr
    window = erphub(demo_env, "run", "crm_customers_to_erp", "--engine", "plain", "--json",
                    "--since", "2000-01-01", "--until", "2100-01-01")
    counts = json.loads(window.stdout)[0]["counts"]
    assert counts["read"] == json.loads(first.stdout)[0]["counts"]["read"]
    assert counts["created"] == counts["updated"] == 0
    full = erphub(demo_env, "run", "crm_customers_to_erp", "--engine", "plain", "--json", "--full")
    counts = json.loads(full.stdout)[0]["counts"]
    assert counts["unchanged"] > 0 and counts["created"] == counts["updated"] == 0
    assert erphub(demo_env, "run", "crm_customers_to_erp", "--until", "2100-01-01").returncode == 2
