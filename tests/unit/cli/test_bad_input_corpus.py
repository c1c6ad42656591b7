"""Every bad input gets a clear answer: the corpus of tests/unit/cli/bad_inputs.py, case by case.

A case fails on a traceback, on an answer that does not say where (file:line and field, or the CLI
argument), and on a bad input that was accepted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.bad_inputs import CASES, Case, run_case


def test_the_corpus_covers_at_least_the_153_kinds_the_issue_tried() -> None:
    assert len(CASES) >= 153
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_bad_input_is_answered_clearly(case: Case, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path / "deployment")
    assert outcome.verdict in ("clear", "accepted"), f"{outcome.verdict}: {outcome.detail}"
