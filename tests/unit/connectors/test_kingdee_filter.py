"""The Kingdee sandbox's FilterString parser: the supported subset, SQL semantics, and refusals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from erphub.sandbox.kingdee.filter import FilterSyntaxError, evaluate, fields_of, parse_filter

ROW: dict[str, tuple[Any, str]] = {
    "FNumber": ("CUS-000123", "text"),
    "FName": ("上海星辰精密机械有限公司", "text"),
    "FDocumentStatus": ("C", "status"),
    "FModifyDate": (datetime(2026, 3, 1, 10, 30, 0, 537000), "datetime"),
    "FQty": (Decimal("12.5"), "number"),
    "FID": (100123, "int"),
    "FNote": (None, "text"),
    "FCustId.FNumber": ("CUS-000001", "text"),
}


def matches(text: str) -> bool:
    return evaluate(parse_filter(text), lambda key: ROW[key])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FDocumentStatus='C'", True),
        ("FDocumentStatus = 'c'", True),  # case-insensitive collation
        ("FDocumentStatus<>'C'", False),
        ("FDocumentStatus != 'A'", True),
        ("FNumber like 'CUS-%'", True),
        ("FNumber like 'cus-0001_3'", True),
        ("FNumber not like 'SUP%'", True),
        ("FName like '%精密%'", True),
        ("FNumber in ('CUS-000001', 'CUS-000123')", True),
        ("FNumber not in ('CUS-000123')", False),
        ("FQty > 12", True),
        ("FQty >= 12.5 and FQty <= 12.5", True),
        ("FQty < 3", False),
        ("FID = 100123", True),
        ("FID > '100122'", True),  # a quoted number compares as a number on a number field
        ("FModifyDate >= '2026-03-01'", True),
        ("FModifyDate > '2026-03-01 10:30:00.537'", False),
        ("FModifyDate = '2026-03-01T10:30:00.537'", True),
        ("FModifyDate > '2026-03-01 10:30:00.536' and FModifyDate < '2026-03-02'", True),
        ("FNote = ''", False),  # NULL compares unknown
        ("FNote is null", True),
        ("FNote is not null", False),
        ("(FDocumentStatus='A' or FDocumentStatus='C') and FQty>1", True),
        ("FDocumentStatus='A' or FDocumentStatus='B' and FQty>1", False),  # and binds tighter
        ("not (FDocumentStatus='A')", True),
        ("FCustId.FNumber = 'CUS-000001'", True),
        ("FName = 'O''Brien'", False),
        ("", True),
    ],
)
def test_filter_semantics(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "FNumber = 'x'; drop table t_bd_customer",
        "FNumber = 'unterminated",
        "FNumber == 'x'",
        "FNumber = x",  # a bare word is not a value
        "(FNumber = 'x'",
        "FNumber in ()",
        "FNumber between 1 and 2",
        "1 = 1",
        "FNumber = 'a' and",
    ],
)
def test_refuses_what_it_does_not_support(text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_filter(text)


def test_quoted_quote_and_fields_of() -> None:
    node = parse_filter("FName = 'O''Brien' and (FQty > 1 or FCustId.FNumber in ('A','B'))")
    assert fields_of(node) == {"FName", "FQty", "FCustId.FNumber"}
    assert evaluate(parse_filter("FName = 'O''Brien'"), lambda key: ("o'brien", "text")) is True


def test_bad_date_literal_is_an_error() -> None:
    with pytest.raises(FilterSyntaxError):
        matches("FModifyDate > 'yesterday'")


def test_isnull_stands_in_for_null_as_sql_does() -> None:
    """The real FilterString is SQL: `ISNULL(field, default)` works there (vendor-gaps.md), so here too."""
    rows: list[dict[str, Any]] = [{"FNote": None}, {"FNote": "加急"}, {"FNote": ""}]

    def matching(text: str) -> list[int]:
        node = parse_filter(text)
        return [n for n, row in enumerate(rows) if evaluate(node, lambda f, row=row: (row[f], "text"))]

    assert matching("ISNULL(FNote, '') = ''") == [0, 2]
    assert matching("FNote = ''") == [2]  # NULL compares unknown without it
    assert matching("isnull(FNote, 'x') <> 'x' and FNote like '%急%'") == [1]
    with pytest.raises(FilterSyntaxError, match="unsupported function"):
        parse_filter("DATEDIFF(day, FDate, '2026-01-01') > 3")
