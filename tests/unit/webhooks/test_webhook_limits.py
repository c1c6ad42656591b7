"""The webhook door under the shared input limits: the size limit while streaming, nesting before parsing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from erphub.config.models import WebhookSource
from erphub.core.errors import PayloadError
from erphub.core.limits import MAX_BODY_BYTES, MAX_DEPTH
from erphub.webhooks.envelope import parse_event
from erphub.webhooks.receiver import WebhookReceiver

CHUNK = 1024 * 1024


def _app() -> Starlette:
    sources = {"s": WebhookSource(kind="hmac", secret="not-a-real-secret")}
    receiver = WebhookReceiver(sources, store=None, route=lambda source, op: [])  # type: ignore[arg-type]
    return Starlette(routes=receiver.routes())


def _post(content: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://hub") as client:
            return await client.post("/webhooks/s", content=content, headers=headers or {})

    return asyncio.run(go())


def test_an_oversized_streamed_body_is_refused_at_the_chunk_that_crosses_the_limit() -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(300):  # 300 MB if it were all read
            sent += 1
            yield b"x" * CHUNK

    answer = _post(body())
    assert answer.status_code == 413
    assert sent <= MAX_BODY_BYTES // CHUNK + 2  # read up to the limit, not the whole 300 MB


def test_a_declared_content_length_over_the_limit_is_refused_before_reading() -> None:
    answer = _post(b"{}", headers={"content-length": str(MAX_BODY_BYTES + 1)})
    assert answer.status_code == 413


def test_a_deeply_nested_body_is_a_payload_error_not_a_crash() -> None:
    deep = b'{"op": "data_update", "data": {"_id": "1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with pytest.raises(PayloadError, match=f"nested too deeply \\(more than {MAX_DEPTH}"):
        parse_event(deep)
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH + 5):
        nested = {"k": nested}
    with pytest.raises(PayloadError, match="nested"):
        parse_event(json.dumps({"op": "data_update", "data": {"_id": "1", "x": nested}}).encode())
