"""pytest imports test modules by basename (the test folders are not packages): two test files with one
name break collection of the whole suite, so each name is kept unique."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]


def test_no_two_test_files_share_a_basename() -> None:
    paths: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        paths[path.name].append(str(path.relative_to(TESTS)))
    assert {name: where for name, where in paths.items() if len(where) > 1} == {}
