"""The packages of the one `erphub` namespace, found under each root of `[tool.setuptools.package-dir]`.

pyproject.toml's static `packages.find` searches one root and names packages by folder, so it cannot
say that `connectors/kingdee/` is `erphub.connectors.kingdee`; this file does only that. Data folders
(mappings/lookups/, store/migrations/, ...) count as packages too, as setuptools asks, so their files
ship by the package-data patterns of pyproject.toml.
"""

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
ROOTS: dict[str, str] = tomllib.loads((HERE / "pyproject.toml").read_text(encoding="utf-8"))[
    "tool"]["setuptools"]["package-dir"]


def packages() -> list[str]:
    found: set[str] = set(ROOTS)
    for package, folder in ROOTS.items():
        found.update(f"{package}.{sub}" for sub in find_namespace_packages(str(HERE / folder))
                     if "__pycache__" not in sub.split(".") and f"{package}.{sub}" not in ROOTS)
    return sorted(found)


setup(packages=packages())
