"""Lay out the `erphub` package as it installs, as a tree of symlinks, for tools that read folders.

The repository keeps its rooms at the top (config/, connectors/, ...) and setuptools installs them
as `erphub.config`, `erphub.connectors`, ... (`[tool.setuptools.package-dir]` in pyproject.toml).
Python follows that through the editable install's import hook, but mypy and import-linter walk
folders, so `make lint` and the layer test point them at this tree instead:

    python scripts/package_tree.py build/package-tree   ->   build/package-tree/erphub/config/loader.py
                                                               -> ../../../../config/loader.py, ...

The tree is rebuilt from scratch each time (a few milliseconds).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"__pycache__"}


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Package name -> source folder, from pyproject.toml."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return {name: root / folder for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def build(destination: Path, root: Path = ROOT, *, copy: bool = False) -> Path:
    """(Re)build the tree under `destination`; the path of its top package folder.

    Rooms are folder symlinks (mypy follows those, not file symlinks), so the tree stays current while
    files change; `copy=True` copies them instead, for a test that plants a module in the tree.
    """
    destination = destination.resolve()
    if destination.exists():
        shutil.rmtree(destination)
    for package, source in sorted(package_dirs(root).items()):
        target = destination.joinpath(*package.split("."))
        if copy:
            shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif "." in package:
            target.symlink_to(source, target_is_directory=True)
        else:  # the top package: a real folder, so the rooms can sit inside it
            target.mkdir(parents=True)
            for entry in sorted(source.iterdir()):
                if entry.name not in SKIP:
                    (target / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return destination / "erphub"


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "package-tree"
    print(build(out))
