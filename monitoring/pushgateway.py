"""Push one-shot runs' metrics to a Pushgateway (job ``erphub``, grouping key ``instance``).

A one-shot ``erphub run`` ends before Prometheus could scrape it, so it pushes instead. What it pushes
is cumulative, so that ``increase()`` and ``rate()`` work on the Pushgateway's series exactly as on
``erphub serve``'s:

- counters and histograms are the totals of every process that counted into the shared metrics
  folder (`erphub.monitoring.multiprocess`) since it was last emptied — run 1 pushes
  ``erphub_auth_failures_total 1``, run 2 pushes ``2`` — never the "fresh 1" of one process;
- the gauges the alerts use (last run, last success, schedule interval, open dead letters, configured
  time) come from the store, for every pipeline.

One group per hub: ``/metrics/job/<job>/instance/<instance>`` (instance: ``metrics.instance`` in the
config, default the host name), replaced by each push (PUT), so every pipeline's series stay labelled
with their own ``pipeline``. Pushes from concurrent runs are serialised by a lock file in the metrics
folder, so a snapshot read earlier never lands after a newer one (which would look like a counter reset).
Scrape the Pushgateway with ``honor_labels: true``. Do not configure a Pushgateway for a hub whose
``erphub serve`` is scraped too: serve's /metrics already includes one-shot runs' counters (same folder),
and the two would be counted twice by ``sum``.

A failed push never fails the run: it is logged (URL redacted) and reported as ``False``.
"""

from __future__ import annotations

import fcntl
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client.exposition import basic_auth_handler, default_handler, push_to_gateway
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from erphub.monitoring import multiprocess
from erphub.monitoring.exposition import MetricsView, StoreStateReader
from erphub.monitoring.redaction import add_secrets, redact_text

log = logging.getLogger("erphub.monitoring.pushgateway")


class PushgatewaySettings(BaseModel):
    """The ``monitoring.pushgateway`` block of the hub config."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL, e.g. http://127.0.0.1:9091 (no /metrics/... path)")
    job: str = "erphub"
    instance: str = Field(default_factory=socket.gethostname, description="the grouping key's instance label")
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


@contextmanager
def _push_lock() -> Iterator[None]:
    """One push at a time per metrics folder (no folder: one process, nothing to order)."""
    folder = multiprocess.folder()
    if folder is None:
        yield
        return
    with (folder / ".push.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def push_run_metrics(
    settings: PushgatewaySettings | str,
    *,
    state_reader: StoreStateReader | None = None,
    registry: Any = None,
) -> bool:
    """Push the hub's cumulative metrics; store-backed gauges come from *state_reader* if given, else
    from the in-process gauges the runs set. Returns whether the push succeeded."""
    if isinstance(settings, str):  # the hub config's `metrics.pushgateway_url`
        settings = PushgatewaySettings(url=settings)
    view = MetricsView(state_reader, registry=registry)
    try:
        with _push_lock():
            push_to_gateway(
                settings.url,
                job=settings.job,
                registry=view,  # push_to_gateway only calls collect()
                grouping_key={"instance": settings.instance},
                timeout=settings.timeout_s,
                handler=_handler(settings),
            )
    except Exception as exc:  # network errors, HTTP errors: the run's outcome must not depend on them
        log.warning("pushgateway push failed for instance %s: %s", settings.instance, redact_text(str(exc)))
        return False
    return True
