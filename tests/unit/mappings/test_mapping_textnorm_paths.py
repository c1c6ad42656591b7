"""Phone and USCC normalisation, full-width text, and source paths."""

from __future__ import annotations

import pytest

from erphub.mappings.paths import PathSyntaxError, compile_getter, parse_path
from erphub.mappings.textnorm import USCC_ALPHABET, halfwidth, normalise_phone, normalise_uscc, uscc_check_char

# --- phone ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("+86-138-1234-5678", "13812345678"),
        ("0086 13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("＋８６　１３８１２３４５６７８", "13812345678"),
        ("(010) 1234-5678", "010-12345678"),
        ("（０２１）８７６５４３２１", "021-87654321"),
        ("0755 8888 6666", "0755-88886666"),
        ("0571-8888666", "0571-8888666"),  # 4-digit area code, 7-digit number
        ("010-12345678 转 123", "010-12345678-123"),
        ("0755-88886666 ext. 9", "0755-88886666-9"),
        ("0755-88886666#12", "0755-88886666-12"),
    ],
)
def test_phone_normalised(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "12345",
        "1381234567",  # one digit short
        "23812345678",  # not a mobile prefix
        "12812345678",  # 12x is not a mobile range
        "010-1234567",  # Beijing numbers have 8 digits
        "13812345678 转 1",  # a mobile has no extension
        "电话待定",
        "138１２３４５６７８x",
        "１" * 1000,
    ],
)
def test_phone_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalise_phone(raw)


# --- USCC -----------------------------------------------------------------------------------------


def test_uscc_known_valid_codes() -> None:
    assert normalise_uscc("91350100M000100Y43") == "91350100M000100Y43"
    assert normalise_uscc("91320506159083012Q") == "91320506159083012Q"


def test_uscc_check_character_is_verified_for_every_position() -> None:
    code = "91350100M000100Y43"
    for i in range(18):
        for ch in USCC_ALPHABET:
            if ch == code[i]:
                continue
            if i in range(2, 8) and not ch.isdigit():
                continue
            mutated = code[:i] + ch + code[i + 1 :]
            with pytest.raises(ValueError):
                normalise_uscc(mutated)


def test_uscc_check_char_zero_case() -> None:
    # When the weighted sum is a multiple of 31 the check character is '0', not the 31st symbol.
    for n in range(10_000):
        first17 = f"9132050600000{n:04d}"
        if uscc_check_char(first17) == "0":
            assert normalise_uscc(first17 + "0") == first17 + "0"
            return
    pytest.fail("no code with check character 0 found")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "18 characters, got 0"),
        ("91350100M000100Y4", "got 17"),
        ("91350100M000100Y433", "got 19"),
        ("91350100M000100I43", "'I' is not allowed"),
        ("91350100M000100O43", "'O' is not allowed"),
        ("91350100M000100S43", "'S' is not allowed"),
        ("913501A0M000100Y43", "region code"),
        ("91350100M000100Y44", "check character"),
        ("91350100M00010汉Y43", "not allowed"),
    ],
)
def test_uscc_refused(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        normalise_uscc(raw)


def test_halfwidth_covers_the_whole_fullwidth_ascii_block() -> None:
    full = "".join(chr(c) for c in range(0xFF01, 0xFF5F))
    assert halfwidth(full) == "".join(chr(c) for c in range(0x21, 0x7F))
    assert halfwidth("\u3000") == " "
    assert halfwidth("。、「」") == "。、「」"  # CJK punctuation is not full-width ASCII


# --- paths ----------------------------------------------------------------------------------------

RECORD = {
    "customer": {"contact": {"phone": "138"}},
    "items": [{"sku": "P-1"}, {"sku": "P-2"}, {"x": 1}],
    "地址": {"省": "广东"},
    "odd.key": {"v": 1},
    "n": None,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("customer.contact.phone", "138"),
        ("customer.contact", {"phone": "138"}),
        ("items[0].sku", "P-1"),
        ("items[-1].x", 1),
        ("items[5].sku", None),
        ("items[*].sku", ["P-1", "P-2", None]),
        ("地址.省", "广东"),
        ('["odd.key"].v', 1),
        ("n.deeper", None),
        ("customer.contact.phone.more", None),
        ("customer[0]", None),
        ("items.sku", None),
        ("missing", None),
    ],
)
def test_getter(path: str, expected: object) -> None:
    assert compile_getter(parse_path(path))(RECORD, RECORD) == expected


def test_root_paths_read_the_record_from_a_line() -> None:
    line = {"sku": "P-1"}
    assert compile_getter(parse_path("$.customer.contact.phone"))(line, RECORD) == "138"
    assert compile_getter(parse_path("sku"))(line, RECORD) == "P-1"
    assert compile_getter(parse_path("$"))(line, RECORD) is RECORD


@pytest.mark.parametrize("bad", ["", "  ", "a..b", "a.", ".a", "[0]", "a[x]", "a b", "a[*", 'a["x]'])
def test_bad_paths(bad: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(bad)


def test_path_head() -> None:
    assert parse_path("lines[0].sku").head == "lines"
    assert parse_path("$.currency").head == "currency"
    assert parse_path("lines[*].qty").fans_out
