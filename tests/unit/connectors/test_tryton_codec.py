"""Tryton's typed JSON values and the connector's pure helpers (no server needed)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import SecretStr, ValidationError

from erphub.connectors.tryton import TrytonSettings, codec
from erphub.connectors.tryton.changes import after_cursor as _after
from erphub.connectors.tryton.changes import within_cursor as _within
from erphub.connectors.tryton.invoice import invoice_status as _invoice_status
from erphub.core.records import Cursor


def test_typed_values_round_trip_in_trytons_encoding() -> None:
    value = {"when": dt.datetime(2026, 3, 1, 8, 0, 0, 123456), "day": dt.date(2026, 3, 1),
             "at": dt.time(9, 30, 0, 5), "span": dt.timedelta(seconds=90), "price": Decimal("99.50"),
             "blob": b"\x00\x01", "tags": ["a"]}
    text = codec.dumps(value)
    assert '{"__class__":"Decimal","decimal":"99.50"}' in text
    assert '"__class__":"datetime"' in text and '"microsecond":123456' in text
    assert codec.loads(text) == value


def test_aware_datetimes_are_sent_as_naive_utc() -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    sent = codec.loads(codec.dumps(dt.datetime(2026, 3, 1, 10, 30, tzinfo=shanghai)))
    assert sent == dt.datetime(2026, 3, 1, 2, 30)


def test_unknown_types_are_refused() -> None:
    with pytest.raises(TypeError):
        codec.dumps({"x": object()})


def test_cursor_window_is_strictly_after_since_and_inclusive_until() -> None:
    t = dt.datetime(2026, 3, 1, 8, 0, 0, 1)
    since = Cursor(t.replace(tzinfo=dt.UTC), "7")
    assert not _after(since, t, 7) and not _after(since, t, 3) and _after(since, t, 8)
    assert _after(since, t + dt.timedelta(microseconds=1), 1)
    assert _after(Cursor(t.replace(tzinfo=dt.UTC)), t, 1)  # empty id: every record at that time
    assert _within(Cursor(t.replace(tzinfo=dt.UTC), "\uffff"), t, 10**9)
    assert not _within(Cursor(t.replace(tzinfo=dt.UTC), "5"), t, 6)


@pytest.mark.parametrize(("to_pay", "paid", "due", "expected"), [
    (Decimal(0), Decimal(100), dt.date(2026, 1, 1), "paid"),
    (Decimal(50), Decimal(50), dt.date(2026, 2, 1), "overdue"),
    (Decimal(50), Decimal(50), dt.date(2026, 3, 1), "partly_paid"),
    (Decimal(100), Decimal(0), dt.date(2026, 3, 1), "open"),
])
def test_invoice_status(to_pay: Decimal, paid: Decimal, due: dt.date, expected: str) -> None:
    assert _invoice_status(to_pay, paid, due, dt.date(2026, 3, 1)) == expected


def test_settings_keep_the_password_secret() -> None:
    s = TrytonSettings(url="http://127.0.0.1:8000", database="hub", login="admin",
                       password=SecretStr("admin-pass-123"))
    assert "admin-pass-123" not in repr(s) and s.sale_workflow == "draft"
    with pytest.raises(ValidationError):
        TrytonSettings(url="http://x", database="hub", login="a", password=SecretStr("p"),
                       sale_workflow="ship")  # type: ignore[arg-type]
