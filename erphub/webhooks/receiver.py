"""`POST /webhooks/{source}`: verify, deduplicate, commit to the inbox, then answer.

    unknown source           404
    bad / missing signature  401  bad_signature
    timestamp out of window  401  stale
    nonce reused             401  replayed
    not JSON, no op/data/_id 400  malformed      (checked after the signature: strangers learn nothing)
    delivery id seen before  200  duplicate      (nothing done)
    new event                200  accepted       (committed to the inbox before this answer)

Each source's signature check comes from the connector registry (`webhook_verifier(kind)`): the
generic `hmac` kind, or the `verify_webhook` of the connector whose kind the source names.

Logs name only the source, the delivery id and the outcome; never a payload value. The payload
lives in the inbox row, nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from erphub.config.loader import LoadedConfig
from erphub.config.models import PipelineConfig, WebhookSource
from erphub.connectors.registry import webhook_verifier
from erphub.connectors.webhooks import Checked, Verdict, WebhookVerifier
from erphub.core.errors import ConfigError, PayloadError, StoreError
from erphub.core.limits import MAX_BODY_BYTES
from erphub.monitoring.metrics import count_webhook
from erphub.store import Store
from erphub.webhooks import inbox
from erphub.webhooks.envelope import parse_event

log = structlog.get_logger("erphub.webhooks")

Router = Callable[[str, str], list[str]]


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over `limit`: a declared Content-Length over it is
    refused before one byte is read, and a streamed body is refused at the chunk that crosses it, so a
    300 MB push costs at most `limit` bytes of memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def router_from_config(pipelines: Mapping[str, PipelineConfig]) -> Router:
    """Which enabled pipelines take an event of `op` from webhook source `source`."""

    def route(source: str, op: str) -> list[str]:
        return sorted(name for name, p in pipelines.items()
                      if p.enabled and p.webhook is not None and p.webhook.source == source
                      and op in p.webhook.events)

    return route


def webhook_verifiers(config: LoadedConfig) -> dict[str, WebhookVerifier]:
    """The signature check of every `serve.webhooks` source; an unknown kind fails at its file and line.

    config/ cannot import the connectors, so a kind is checked here, when serve starts or validate runs.
    """
    verifiers: dict[str, WebhookVerifier] = {}
    for name, source in config.hub.serve.webhooks.items():
        try:
            verifiers[name] = webhook_verifier(source.kind)
        except ConfigError as exc:
            raise config.error(exc.message, "serve", "webhooks", name, "kind") from None
    return verifiers


# Source settings every kind shares; the rest (`header`, say) are the verifier's options.
_COMMON_SETTINGS = frozenset({"kind", "secret", "max_age_s"})


@dataclass
class WebhookReceiver:
    sources: Mapping[str, WebhookSource]
    store: Store
    route: Router
    on_accepted: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.time
    # Source name -> signature check; looked up from the registry when not given.
    verifiers: Mapping[str, WebhookVerifier] | None = None

    def __post_init__(self) -> None:
        if self.verifiers is None:
            self.verifiers = {name: webhook_verifier(source.kind) for name, source in self.sources.items()}

    def routes(self) -> list[Route]:
        return [Route("/webhooks/{source}", self.handle, methods=["POST"])]

    async def handle(self, request: Request) -> JSONResponse:
        name = request.path_params["source"]
        source = self.sources.get(name)
        if source is None:
            log.warning("webhook refused", source=name[:64], outcome="unknown_source")
            return self._answer(404, "unknown webhook source")
        body = await read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return self._refuse(name, "", "malformed", 413, "body too large")
        now = self.clock()
        checked = self._verify(name, source, body, request, now)
        if checked.verdict == Verdict.BAD_SIGNATURE:
            return self._refuse(name, checked.deliver_id, "bad_signature", 401, "bad signature")
        if checked.verdict == Verdict.STALE:
            return self._refuse(name, checked.deliver_id, "stale", 401, "timestamp outside the accepted window")
        try:
            event = parse_event(body)
            record_id = event.record_id()
            received = datetime.fromtimestamp(now, UTC)
            updated_at = event.updated_at(received)
        except PayloadError as exc:
            return self._refuse(name, checked.deliver_id, "malformed", 400, exc.message)
        incoming = inbox.IncomingEvent(
            source=name, deliver_id=checked.deliver_id[:255], nonce=checked.nonce[:255], op=event.op,
            record_id=record_id[:255], record_updated_at=updated_at, payload=event.data,
            pipelines=tuple(self.route(name, event.op)))
        try:
            # Twice the age window: a request stays fresh for max_age on either side of its timestamp.
            outcome = await run_in_threadpool(inbox.accept, self.store, incoming,
                                              nonce_window_s=2 * source.max_age_s, now=received)
        except StoreError:
            # Not committed, so not accepted: a 503 makes the sender try again later.
            log.error("webhook not stored", source=name, deliver_id=checked.deliver_id, outcome="store_error")
            return self._answer(503, "inbox unavailable, retry later")
        if outcome == "replayed":
            return self._refuse(name, checked.deliver_id, "replayed", 401, "nonce already used")
        count_webhook(name, outcome)
        log.info("webhook received", source=name, deliver_id=checked.deliver_id, outcome=outcome)
        if outcome == "accepted" and incoming.pipelines:
            self.on_accepted()
        return self._answer(200, outcome)

    def _verify(self, name: str, source: WebhookSource, body: bytes, request: Request, now: float) -> Checked:
        assert self.verifiers is not None  # set in __post_init__
        verify = self.verifiers[name]
        options = source.model_dump(exclude=set(_COMMON_SETTINGS))
        return verify(body, request.query_params, request.headers, source.secret.get_secret_value(), now=now,
                      max_age_s=source.max_age_s, options=options)

    def _refuse(self, source: str, deliver_id: str, outcome: str, status: int, reason: str) -> JSONResponse:
        count_webhook(source, outcome)
        log.warning("webhook refused", source=source, deliver_id=deliver_id[:255], outcome=outcome)
        return self._answer(status, reason)

    @staticmethod
    def _answer(status: int, message: str) -> JSONResponse:
        body = {"status": "ok" if status == 200 else "error", "message": message}
        return JSONResponse(body, status_code=status)
