"""Push a one-shot run's metrics to a Pushgateway (job ``erphub``, grouping key ``pipeline``).

A one-shot ``erphub run`` ends before Prometheus could scrape it, so it pushes instead. The push is a
PUT: it replaces the pipeline's previous group, which is right for the gauges the alerts use (last
run, last success, schedule interval, open dead letters). Only the pushed pipeline's samples are sent,
because the Pushgateway overwrites a pushed ``pipeline`` label with the grouping key's value.

A failed push never fails the run: it is logged (URL redacted) and reported as ``False``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prometheus_client.exposition import basic_auth_handler, default_handler, push_to_gateway
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from erphub.monitoring.exposition import MetricsView, StoreStateReader
from erphub.monitoring.redaction import add_secrets, redact_text

log = logging.getLogger("erphub.monitoring.pushgateway")


class PushgatewaySettings(BaseModel):
    """The ``monitoring.pushgateway`` block of the hub config."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL, e.g. http://127.0.0.1:9091 (no /metrics/... path)")
    job: str = "erphub"
    timeout_s: float = Field(default=10.0, gt=0)
    username: str | None = None
    password: SecretStr | None = None


Handler = Callable[..., Callable[[], None]]


def _handler(settings: PushgatewaySettings) -> Handler:
    if settings.username is None:
        return default_handler
    password = settings.password.get_secret_value() if settings.password else ""
    add_secrets(password)
    username = settings.username

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return handler


def push_run_metrics(
    settings: PushgatewaySettings | str,
    pipeline: str,
    *,
    state_reader: StoreStateReader | None = None,
    registry: Any = None,
) -> bool:
    """Push this process's metrics for *pipeline*; store-backed gauges come from *state_reader* if
    given, else from the in-process gauges the run set. Returns whether the push succeeded."""
    if isinstance(settings, str):  # the hub config's `metrics.pushgateway_url`
        settings = PushgatewaySettings(url=settings)
    kwargs: dict[str, Any] = {"only_pipeline": pipeline}
    if registry is not None:
        kwargs["registry"] = registry
    view = MetricsView(state_reader, **kwargs)
    try:
        push_to_gateway(
            settings.url,
            job=settings.job,
            registry=view,  # push_to_gateway only calls collect()
            grouping_key={"pipeline": pipeline},
            timeout=settings.timeout_s,
            handler=_handler(settings),
        )
    except Exception as exc:  # network errors, HTTP errors: the run's outcome must not depend on them
        log.warning("pushgateway push failed for pipeline %s: %s", pipeline, redact_text(str(exc)))
        return False
    return True
