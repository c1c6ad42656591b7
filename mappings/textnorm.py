"""Chinese business text: full-width characters, phone numbers, unified social credit codes.

Plain functions on strings, used by the named transforms and by hand-written code alike. Each
either returns the normalised value or raises ValueError with a message a mapping author can read.
"""

from __future__ import annotations

import re

# Full-width ASCII variants U+FF01..U+FF5E sit exactly 0xFEE0 above their ASCII twins; U+3000 is
# the ideographic space. One translate table does the whole string in C.
_HALFWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_HALFWIDTH[0x3000] = 0x20


def halfwidth(text: str) -> str:
    """`ＡＢＣ１２３　－` -> `ABC123 -`. Other characters (汉字, kana) are untouched."""
    return text.translate(_HALFWIDTH)


# --- phone -------------------------------------------------------------------------------------

_PHONE_NOISE = re.compile(r"[\s\-()（）.]+")
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Mainland landline: 0 + 2-3 digit area code + 7-8 digit number, optional extension.
_LANDLINE = re.compile(r"(0(?:10|2\d|[3-9]\d{2}))(\d{7,8})")
_EXTENSION = re.compile(r"(?:转|ext\.?|x|#)\s*(\d{1,6})$", re.IGNORECASE)


def normalise_phone(text: str) -> str:
    """A mainland phone number in one canonical form.

    Mobile: 11 digits (`13812345678`), country prefix `+86`/`0086`/`86` removed.
    Landline: `0755-12345678`, with `-123` for an extension.
    Anything else raises ValueError: a number we cannot read is not guessed at.
    """
    raw = halfwidth(text).strip()
    if not raw:
        raise ValueError("empty phone number")
    ext = ""
    m = _EXTENSION.search(raw)
    if m:
        ext, raw = m.group(1), raw[: m.start()]
    digits = _PHONE_NOISE.sub("", raw)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"not a phone number: {text!r}")
    if _MOBILE.fullmatch(digits):
        if ext:
            raise ValueError(f"a mobile number has no extension: {text!r}")
        return digits
    m = _LANDLINE.fullmatch(digits)
    if m:
        area, number = m.groups()
        # A 3-digit area code (010, 02x) takes an 8-digit number; 4-digit codes take 7 or 8.
        if len(area) == 3 and len(number) != 8:
            raise ValueError(f"not a phone number: {text!r}")
        return f"{area}-{number}" + (f"-{ext}" if ext else "")
    raise ValueError(f"not a mainland mobile or landline number: {text!r}")


# --- unified social credit code (统一社会信用代码, GB 32100-2015) -----------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, Z, S, V
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_SHAPE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}")


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def normalise_uscc(text: str) -> str:
    """Upper-case, half-width, separators removed, and the check character (18th) verified."""
    code = re.sub(r"[\s\-]+", "", halfwidth(text)).upper()
    if len(code) != 18:
        raise ValueError(f"a unified social credit code has 18 characters, got {len(code)}: {text!r}")
    if not _USCC_SHAPE.fullmatch(code):
        bad = next((ch for ch in code if ch not in _USCC_VALUE), None)
        if bad is not None:
            raise ValueError(f"character {bad!r} is not allowed in a unified social credit code: {text!r}")
        raise ValueError(f"characters 3-8 of a unified social credit code are the region code "
                         f"(digits): {text!r}")
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise ValueError(f"check character of unified social credit code {code} is wrong "
                         f"(expected {expected})")
    return code
