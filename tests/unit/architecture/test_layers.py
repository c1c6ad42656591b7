"""The arrows of the layers hold, and a wrong-way import is caught.

import-linter's contracts (pyproject.toml) run on the package as it installs (scripts/package_tree.py
lays it out as symlinks). Each planted module goes into that tree only, never into the repository.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("package_tree", ROOT / "scripts" / "package_tree.py")
assert _spec is not None and _spec.loader is not None
package_tree = importlib.util.module_from_spec(_spec)  # a script of the repository, not a package
_spec.loader.exec_module(package_tree)

OLD_TOP_LEVEL = {"config", "connectors", "mappings", "flows", "monitoring", "sandbox"}


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports puts its working folder first on sys.path: there `erphub` is the laid-out tree.
    return subprocess.run([str(Path(sys.executable).with_name("lint-imports")), str(ROOT / "pyproject.toml"),
                           "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_tree.build(tmp_path_factory.mktemp("tree")).parent


def test_every_contract_is_kept(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("where", "statement", "contract"), [
    ("core/_planted.py", "from erphub.engine import run_pipeline", "Layers"),
    ("mappings/_planted.py", "from erphub.connectors.base import Connector", "Layers"),
    ("connectors/_planted.py", "def later():\n    from erphub.config.loader import load_config\n",
     "Connectors import only the ground floor"),
    ("webhooks/_planted.py", "import erphub.flows.sync", "Layers"),
    ("unplaced.py", "import json", "Layers"),  # a module no layer names: exhaustive layers refuse it
    ("flows/_planted.py", "from erphub.cli.output import out", "Layers"),
    ("store/_planted.py", "import erphub.sandbox.kingdee", "Only the CLI imports the sandboxes"),
    ("sandbox/_planted.py", "from erphub.connectors.http import HttpClient", "The sandboxes stand alone"),
])
def test_a_wrong_way_import_breaks_a_contract(tmp_path: Path, where: str, statement: str, contract: str) -> None:
    tree = package_tree.build(tmp_path / "tree", copy=True).parent
    (tree / "erphub" / where).write_text(statement + "\n", encoding="utf-8")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(contract), result.stdout
    assert where.replace("/", ".").removesuffix(".py") in result.stdout  # the report names the culprit


def test_nothing_imports_the_rooms_by_their_old_top_level_names() -> None:
    """`config`, `connectors`, ... are erphub.config, erphub.connectors, ... everywhere, tests included."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    offenders: list[str] = []
    for name in tracked:
        path = ROOT / name
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=name)):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                       else [])
            offenders += [f"{name}:{node.lineno}: {m}" for m in modules if m.split(".")[0] in OLD_TOP_LEVEL]
    assert offenders == []
