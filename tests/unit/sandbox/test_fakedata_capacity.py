"""The fake-data generator must stay distinct at benchmark scale (issue 13: up to 1,000,000 customers).

The suite draws 100,000 companies, 14 times the 6,912 base names: past that point names are numbered,
so distinctness at 100k exercises the same path as at 1M (which the scale bench seeds)."""

from __future__ import annotations

from erphub.sandbox.fakedata import Fake, is_valid_uscc

COMPANIES = 100_000


def test_companies_stay_distinct_far_past_the_base_names() -> None:
    fake = Fake(seed=7)
    names: set[str] = set()
    codes: set[str] = set()
    for _ in range(COMPANIES):
        company = fake.company()
        names.add(company.name)
        codes.add(company.credit_code)
    # The old code raised "ran out of distinct company names" near 7,000.
    assert len(names) == COMPANIES
    assert len(codes) == COMPANIES


def test_late_companies_keep_valid_credit_codes() -> None:
    fake = Fake(seed=3)
    for _ in range(20_000):
        company = fake.company()
    assert is_valid_uscc(company.credit_code)
    assert company.credit_code[2:8] == company.division_code


def test_same_seed_same_companies_past_the_base_names() -> None:
    first, second = Fake(seed=11), Fake(seed=11)
    a = [first.company() for _ in range(12_000)]
    b = [second.company() for _ in range(12_000)]
    assert a == b
    other = Fake(seed=12)
    assert [other.company() for _ in range(100)] != a[:100]
