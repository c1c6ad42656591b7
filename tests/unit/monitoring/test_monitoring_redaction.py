"""Secrets never leave through logs, exception text or stored structures."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections import namedtuple
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from erphub.monitoring.logging import RedactingFilter, configure_logging, get_logger, run_context
from erphub.monitoring.redaction import (
    REDACTED,
    add_secrets,
    is_sensitive_key,
    redact_obj,
    redact_text,
    registered_secrets,
)
from tests.unit.monitoring.fakes import CANARY

ENCODED_FORMS = {
    "raw": CANARY,
    "url": quote(CANARY, safe=""),
    "url_plus": quote_plus(CANARY),
    "base64": base64.b64encode(CANARY.encode()).decode(),
    "base64_url": base64.urlsafe_b64encode(CANARY.encode()).decode().rstrip("="),
    "json_ascii": json.dumps(CANARY)[1:-1],
}


def _assert_clean(text: str) -> None:
    for name, form in ENCODED_FORMS.items():
        assert form not in text, f"{name} form of the canary leaked: {text!r}"


@pytest.mark.parametrize("form", sorted(ENCODED_FORMS))
def test_every_encoded_form_of_a_registered_secret_is_removed(form: str) -> None:
    add_secrets([CANARY])
    text = f"GET /api?x=1&q={ENCODED_FORMS[form]}&y=2 done"
    cleaned = redact_text(text)
    _assert_clean(cleaned)
    assert cleaned.startswith("GET /api?x=1&q=") and cleaned.endswith("&y=2 done")
    assert REDACTED in cleaned


def test_secrets_passed_per_call_work_without_registration() -> None:
    assert redact_text(f"pw is {CANARY}", [CANARY]) == f"pw is {REDACTED}"
    assert CANARY not in registered_secrets()


def test_too_short_values_are_not_treated_as_secrets() -> None:
    add_secrets("ab", "", None)
    assert registered_secrets() == frozenset()
    assert redact_text("about a table") == "about a table"


def test_authorization_headers_and_token_schemes() -> None:
    text = (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc\n"
        "proxy-authorization=Basic dXNlcjpwYXNzd29yZA==\n"
        "Cookie: kdservice-sessionid=4f1c9a; ASP.NET_SessionId=zz\n"
        "retrying with Session 8e2b1f0c77d94d2a and Token AbCdEf123456\n"
        "Session expired, Basic authentication required"
    )
    lines = redact_text(text).splitlines()
    assert lines[0] == f"Authorization: {REDACTED}"
    assert lines[1] == f"proxy-authorization={REDACTED}"
    assert lines[2] == f"Cookie: {REDACTED}"
    assert lines[3] == f"retrying with Session {REDACTED} and Token {REDACTED}"
    assert lines[4] == "Session expired, Basic authentication required"  # prose stays readable


def test_credential_named_values_in_text() -> None:
    text = (
        "url=https://h/api?access_token=tok123&page=2 "
        "{'password': 'correct horse', \"app_secret\": \"s p a c e\"} "
        "api_key: k-9 appKey=ak42 note=fine"
    )
    cleaned = redact_text(text)
    for value in ("tok123", "correct horse", "s p a c e", "k-9", "ak42"):
        assert value not in cleaned
    assert "page=2" in cleaned and "note=fine" in cleaned
    assert redact_text(cleaned) == cleaned  # idempotent


def test_redact_obj_walks_nested_structures_and_keeps_shapes() -> None:
    add_secrets(CANARY)
    Pair = namedtuple("Pair", "a b")
    obj: dict[str, Any] = {
        "customer": {"name": "上海华通", "remark": f"see {CANARY}", "credit": 5000, "active": True},
        "headers": {"Authorization": "Basic Zm9vOmJhcg==", "X-Trace": "t-1"},
        "systems": [{"name": "kingdee", "app_secret": "x", "password": None, "auth_failures": 2}],
        "tags": ("a", CANARY),
        "pair": Pair(1, CANARY),
        "raw": CANARY.encode(),
        CANARY: "key that is itself a secret",
        "err": ValueError(f"login failed: {CANARY}"),
    }
    out = redact_obj(obj)
    _assert_clean(repr(out))
    assert out["customer"] == {
        "name": "上海华通", "remark": f"see {REDACTED}", "credit": 5000, "active": True,
    }
    assert out["headers"] == {"Authorization": REDACTED, "X-Trace": "t-1"}
    assert out["systems"] == [
        {"name": "kingdee", "app_secret": REDACTED, "password": None, "auth_failures": 2},
    ]
    assert out["tags"] == ("a", REDACTED) and isinstance(out["tags"], tuple)
    assert out["pair"] == Pair(1, REDACTED)
    assert out["err"] == f"ValueError: login failed: {REDACTED}"
    assert obj["customer"]["remark"] == f"see {CANARY}"  # the input is not modified


def test_numeric_secret_is_removed_from_numbers() -> None:
    add_secrets("987654")
    assert redact_obj({"pin": 987654, "n": 12})["n"] == 12
    assert redact_obj({"value": 987654}) == {"value": REDACTED}


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True), ("db_password", True), ("appSecret", True), ("app_secret", True),
        ("access_token", True), ("Authorization", True), ("cookie", True), ("session_id", True),
        ("api_key", True), ("X-Api-Key", True), ("idempotency_key", False), ("auth_failures", False),
        ("author", False), ("key_field", False), ("pipeline", False),
    ],
)
def test_sensitive_key_names(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_canary_never_reaches_the_log_stream(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("json", "DEBUG", secrets=[CANARY], stream=out)
    log = get_logger("erphub.test")
    with run_context("orders", "run-1", "kingdee"):
        log.info("nested", payload={"rows": [{"memo": CANARY}], "headers": {"authorization": CANARY}})
        log.info("encoded", url=f"https://h/x?sig={quote(CANARY, safe='')}")
        log.info("positional %s", CANARY)
        log.info("object", obj=type("Cfg", (), {"__repr__": lambda self: f"Cfg(pw={CANARY})"})())
        logging.getLogger("httpx").warning("HTTP Request: POST https://h/?token=%s", CANARY)
        try:
            raise RuntimeError(f"login rejected for {CANARY}")
        except RuntimeError:
            log.exception("call failed")
        try:
            raise KeyError(CANARY)
        except KeyError:
            logging.getLogger("prefect.task_runs").exception("stdlib traceback")
    text = out.getvalue()
    _assert_clean(text)
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["event"] for e in events] == [
        "nested", "encoded", f"positional {REDACTED}", "object",
        f"HTTP Request: POST https://h/?token={REDACTED}", "call failed", "stdlib traceback",
    ]
    assert events[0]["payload"] == {"rows": [{"memo": REDACTED}], "headers": {"authorization": REDACTED}}
    assert "RuntimeError: login rejected for [REDACTED]" in events[5]["exception"]
    assert "Traceback" in events[6]["exception"]


def test_secret_registered_after_configuration_is_removed_too(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("console", "INFO", stream=out)
    add_secrets(CANARY)  # e.g. a session token obtained at runtime
    get_logger().info("got session", value=CANARY)
    assert CANARY not in out.getvalue() and REDACTED in out.getvalue()


def test_redacting_filter_cleans_records_for_foreign_handlers() -> None:
    add_secrets(CANARY)
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("prefect.test-redaction")
    handler = Capture()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("flow param %s", CANARY)
        try:
            raise ValueError(CANARY)
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert records[0].getMessage() == f"flow param {REDACTED}"
    assert records[1].exc_text is not None and CANARY not in records[1].exc_text
    assert "ValueError" in records[1].exc_text
