"""Parametrises the contract suite over every harness module in tests/contract/harnesses/.

A module takes part when it defines `make_harness()` (a context manager yielding a
`ContractHarness`). Its server starts once per session. A harness that cannot start (a database
or an optional package missing) is skipped with the reason it gives — except under `CI=true`,
where a missing server is a failure, never a skip.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

# The suite's asserts live in an installed module: have pytest explain them as it does in test files.
pytest.register_assert_rewrite("erphub.testing.contract")

from erphub.testing import ContractHarness  # noqa: E402

HARNESS_DIR = Path(__file__).parent / "harnesses"
IN_CI = os.environ.get("CI") == "true"


def harness_modules() -> list[str]:
    names = []
    for path in sorted(HARNESS_DIR.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        if re.search(r"^def make_harness\(", path.read_text(encoding="utf-8"), re.MULTILINE):
            names.append(path.stem)
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness" in metafunc.fixturenames:
        modules = harness_modules()
        metafunc.parametrize("harness", modules, ids=modules, indirect=True, scope="session")


def _unavailable(name: str, reason: str) -> None:
    if IN_CI:
        pytest.fail(f"contract harness {name}: {reason} (CI=true: a missing server or package is a failure)")
    pytest.skip(f"contract harness {name}: {reason}")


@pytest.fixture(scope="session")
def harness(request: pytest.FixtureRequest) -> Iterator[ContractHarness]:
    name: str = request.param
    try:
        module = importlib.import_module(f"tests.contract.harnesses.{name}")
    except ModuleNotFoundError as exc:
        _unavailable(name, f"module {exc.name!r} is not installed")
    factory = module.make_harness()
    try:
        instance = factory.__enter__()
    except pytest.skip.Exception as exc:
        _unavailable(name, str(exc.msg))
    except (ConnectionError, OSError) as exc:
        _unavailable(name, f"server not reachable: {type(exc).__name__}: {exc}")
    try:
        yield instance
    finally:
        factory.__exit__(None, None, None)
