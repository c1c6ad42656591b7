"""Installed as a user installs it: the wheel holds only `erphub`, and works from an empty folder.

Builds the wheel from the working tree's files, installs it into a fresh virtual environment (its
dependencies from the package index, as `pip install erphub` would), then runs `erphub mapping check`
and `erphub demo` in an empty folder and reads the demo's results back from its store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

PACKAGE_DATA = [
    "erphub/config/demo.yaml", "erphub/config/demo.env", "erphub/config/examples/erp_tryton.yaml",
    "erphub/mappings/jiandaoyun_to_kingdee/customer.yaml", "erphub/mappings/lookups/material_codes.csv",
    "erphub/monitoring/alerts.yml", "erphub/monitoring/RUNBOOK.md", "erphub/monitoring/grafana/erphub.json",
    "erphub/monitoring/prefect_logging.yml",
    "erphub/store/migrations/env.py", "erphub/store/migrations/script.py.mako",
    "erphub/store/migrations/versions/0001_initial.py", "erphub/py.typed",
]

pytestmark = pytest.mark.slow


def _run(args: list[Any], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, **kwargs)


def _clean_env() -> dict[str, str]:
    """The environment of a new shell: none of this test session's erphub or Prefect settings."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("ERPHUB_", "PREFECT_", "VIRTUAL_ENV")) and k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout.split("\n")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source], timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = dist.glob("erphub-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    assert _run([sys.executable, "-m", "venv", home]).returncode == 0
    installed = _run([home / "bin" / "python", "-m", "pip", "install", "-q", wheel], env=_clean_env(), timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return home


def test_the_wheel_holds_only_the_erphub_namespace_and_all_its_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"erphub", wheel.name.split("-py3")[0] + ".dist-info"}
    assert [path for path in PACKAGE_DATA if path not in names] == []
    for room in ("config", "connectors", "mappings", "flows", "monitoring", "sandbox", "core", "cli"):
        assert f"erphub/{room}/__init__.py" in names


def test_mapping_check_and_the_demo_work_from_an_empty_folder(venv: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    erphub = venv / "bin" / "erphub"

    site = next((venv / "lib").glob("python3*/site-packages"))
    packaged_demo = site / "erphub" / "config" / "demo.yaml"
    # No silent fallback to the package's files: the packaged mappings are checked when named.
    nothing = _run([erphub, "mapping", "check"], cwd=empty, env=_clean_env(), timeout=300)
    assert nothing.returncode == 2 and str(empty / "mappings") in nothing.stderr
    checked = _run([erphub, "mapping", "check", "--config", packaged_demo], cwd=empty, env=_clean_env(), timeout=300)
    assert checked.returncode == 0, checked.stderr
    assert "mapping(s) compiled" in checked.stdout and "error" not in checked.stdout.lower()

    demo = _run([erphub, "demo"], cwd=empty, env=_clean_env(), timeout=600)
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-4000:]
    assert "first run" in demo.stdout and "third run" in demo.stdout

    # The demo's state is in the folder it ran from, not in the installed package; so is the state of
    # the other configs shipped with erphub (the processes, the example ERPs), named by their full path.
    for shipped in ("processes.yaml", "examples/erp_yonyou.yaml"):
        opened = _run([erphub, "status", "--json", "--config", site / "erphub" / "config" / shipped], cwd=empty,
                      env=_clean_env(), timeout=300)
        assert opened.returncode == 0, opened.stderr
    assert (empty / ".erphub" / "demo" / "demo.db").is_file()
    assert (empty / ".erphub" / "processes.db").is_file()
    assert list(site.rglob("*.db")) == []

    missing = _run([erphub, "status", "--json"], cwd=empty, env=_clean_env(), timeout=300)
    assert missing.returncode == 2 and str(empty / "config" / "demo.yaml") in missing.stderr  # where it looked
    status = _run([erphub, "status", "--json", "--config", packaged_demo], cwd=empty, env=_clean_env(), timeout=300)
    assert status.returncode == 0, status.stderr
    runs = {row["pipeline"]: row for row in json.loads(status.stdout)["pipelines"]}
    customers = runs["crm_customers_to_erp"]
    assert customers["last_run"]["status"] == "success"
    assert customers["last_run"]["counts"]["updated"] == 4  # the third run: four edited CRM customers
    assert customers["linked_records"] > 0
