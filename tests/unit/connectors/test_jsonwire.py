"""JSON on the wire (connectors/jsonwire.py): the bytes httpx's own `json=` would send, the values
the stdlib would read, only faster; what orjson refuses goes the stdlib's way."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from erphub.connectors import jsonwire


def httpx_body(payload: object) -> bytes:
    return httpx.Request("POST", "http://127.0.0.1/", json=payload).content


@pytest.mark.parametrize("payload", [
    {"formid": "BD_Customer", "data": {"Model": [{"FNumber": "CUS-1", "FName": "上海某某科技有限公司",
                                                  "FGroup": {"FNumber": "KA"}, "FQty": 3, "FPrice": 12.5}]}},
    {"text": 'quote " backslash \\ newline \n tab \t bell \x07 emoji 😀 line sep \u2028', "none": None,
     "bools": [True, False], "nested": [[], {}, [1, [2, [3]]]]},
    [1, -2, 0, 2**63 - 1, -(2**63)],
])
def test_bodies_are_the_bytes_httpx_sends(payload: object) -> None:
    assert jsonwire.dumps(payload) == httpx_body(payload)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_float_is_refused_never_sent_as_null(value: float) -> None:
    with pytest.raises(ValueError):
        httpx_body({"amount": value})
    with pytest.raises(ValueError):
        jsonwire.dumps({"amount": value})


def test_big_integers_and_non_string_keys_encode_as_httpx_encodes_them() -> None:
    big = {"n": 2**70}  # beyond 64 bits
    assert jsonwire.dumps(big) == httpx_body(big)
    keys = {1: "a", None: "b"}  # non-string keys: the stdlib writes them as text
    assert jsonwire.dumps(keys) == httpx_body(keys)


@dataclass
class Point:
    x: int


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize("value", [Decimal("1.5"), datetime(2026, 1, 1), Point(1), {1, 2}, uuid.uuid4(), Colour.RED])
def test_what_httpx_refuses_to_encode_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        httpx_body({"v": value})
    with pytest.raises(TypeError):
        jsonwire.dumps({"v": value})


@pytest.mark.parametrize("raw", [
    '{"a": 1, "b": [1.5, "上海", null, true]}'.encode(),
    b'{"n": 123456789012345678901234567890}',  # beyond 64 bits: orjson would round it to a float
    b'{"n": -9223372036854775809, "m": 18446744073709551616}',  # just beyond
    b'{"x": 1e400, "y": 2.5e-400}',  # out of a double's range
    b'{"x": NaN}',  # not JSON, but the stdlib reads it and some servers send it
    '\ufeff{"bom": 1}'.encode("utf-8"),
    '{"utf16": "是"}'.encode("utf-16"),
    b'{"dup": 1, "dup": 2}',
    b'[12345678901234567890123, {"a":[ -98765432109876543210]}]',
    b'123456789012345678901',
])
def test_answers_read_as_the_stdlib_reads_them(raw: bytes) -> None:
    expected = json.loads(raw)
    got = jsonwire.loads(raw)
    assert repr(got) == repr(expected)


def test_an_answer_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        jsonwire.loads(b"<html>502 Bad Gateway</html>")


def test_an_answer_with_a_long_digit_run_goes_to_the_stdlib_and_one_without_to_orjson(monkeypatch) -> None:
    read_by: list[str] = []
    stdlib_loads = json.loads
    monkeypatch.setattr(jsonwire.json, "loads", lambda raw: read_by.append("stdlib") or stdlib_loads(raw))
    ids = b'{"data": [{"_id": "65f3a2b10000000000000001", "n": 12345678901234567}]}'  # 17 digits at most
    assert jsonwire.loads(ids) == stdlib_loads(ids) and read_by == []
    code = b'{"code": "1234567890123456789012"}'  # a false alarm: right all the same
    assert jsonwire.loads(code) == stdlib_loads(code) and read_by == ["stdlib"]
