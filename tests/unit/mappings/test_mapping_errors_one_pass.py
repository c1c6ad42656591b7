"""Issue 11 item 3: every mistake of a file in one pass, a misspelt required key named, CSV problems
at the CSV's own file and line, run-time reasons without Python names."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from erphub.core.errors import MappingError
from erphub.mappings import Rejected, compile_text
from erphub.mappings.compiler import MappingErrors


def test_every_error_of_a_file_is_reported_in_one_pass() -> None:
    text = """source: a
target: b
fields:
  z: {from: c, transforms: [phon, {truncate: -1}]}
  w: {from: "a..b"}
  v: {frm: c}
  ok: c
"""
    with pytest.raises(MappingErrors) as info:
        compile_text(text, file="m.yaml")
    lines = info.value.render().splitlines()
    assert [line.split(": ")[0] for line in lines[:-1]] == [
        "m.yaml:6:7", "m.yaml:4:29", "m.yaml:4:36", "m.yaml:5:7"]  # shape first, then meaning
    assert "did you mean 'phone'" in lines[1] and "did you mean 'from'" in lines[0]
    assert lines[-1] == "4 errors in m.yaml"
    assert info.value.line == 6  # the first one, for code that reads one location


def test_a_misspelt_required_key_is_named() -> None:
    with pytest.raises(MappingError) as info:
        compile_text("source: a\ntarget: b\nfeilds:\n  x: y\n", file="m.yaml")
    assert "missing required key 'fields'; is 'feilds' a misspelling of it?" in info.value.render()


def test_a_misspelt_required_transform_argument_is_named() -> None:
    with pytest.raises(MappingError) as info:
        compile_text("source: a\ntarget: b\nfields:\n  x: {from: v, transforms: [{round: {place: 2, mode: up}}]}\n",
                     file="m.yaml")
    assert "missing argument 'places'" in info.value.message
    assert "is 'place' a misspelling of it?" in info.value.message


def test_csv_errors_name_the_csv_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "dup.csv").write_text("a,b\nX,1\nY,2\nX,3\n", encoding="utf-8")
    (tmp_path / "ragged.csv").write_text("a,b\nX,1,2\n", encoding="utf-8")
    text = "source: a\ntarget: b\nfields:\n  x: {from: c, lookup: dup}\n  y: {from: c, lookup: ragged}\n"
    with pytest.raises(MappingErrors) as info:
        compile_text(text, file="m.yaml", lookups_dir=tmp_path)
    first, second = info.value.errors
    assert (first.file, first.line) == (str(tmp_path / "dup.csv"), 4)
    assert "table used at m.yaml:4:16 fields.x.lookup" in first.message
    assert (second.file, second.line) == (str(tmp_path / "ragged.csv"), 2)


def test_run_time_reasons_speak_the_authors_language() -> None:
    p = compile_text("""source: a
target: b
fields:
  n: {from: n, validate: {type: string}}
  r: {from: r, transforms: [to_decimal], validate: {range: {max: 10}}}
  o: {from: o, validate: {one_of: [A, B]}}
""", file="m.yaml")
    reasons = []
    for record in ({"n": Decimal("13.00")}, {"r": "13.00"}, {"o": Decimal("1E-7")}):
        out = p.apply(record)
        assert isinstance(out, Rejected)
        reasons.append(out.reason)
    assert reasons == ["expected string, got a number 13.00", "13.00 is out of range (max 10)",
                       "0.0000001 is not one of 'A', 'B'"]
    for reason in reasons:
        assert "Decimal(" not in reason and "int" not in reason.split()
