"""The fake-data generator must stay distinct at benchmark scale (issue 13: 1,000,000 customers)."""

from __future__ import annotations

import time

from sandbox.fakedata import Fake, is_valid_uscc


def test_one_million_companies_are_distinct_and_quick() -> None:
    fake = Fake(seed=7)
    names: set[str] = set()
    codes: set[str] = set()
    started = time.perf_counter()
    for _ in range(1_000_000):
        company = fake.company()
        names.add(company.name)
        codes.add(company.credit_code)
    elapsed = time.perf_counter() - started
    assert len(names) == 1_000_000
    assert len(codes) == 1_000_000
    # The old code raised "ran out of distinct company names" near 7,000; generous bound for a shared box.
    assert elapsed < 120, elapsed


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
