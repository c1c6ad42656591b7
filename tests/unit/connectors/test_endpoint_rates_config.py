"""`rate_limit: {endpoints: ...}` replaces a connector's documented per-endpoint limits (a private
deployment's own quota) and leaves the others as the vendor documents them; a name the connector does
not know is a config error at the field (tests/unit/cli/bad_inputs.py has the CLI's answer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from erphub.config.loader import load_config
from erphub.connectors.jiandaoyun import ENDPOINT_RATES
from erphub.core.errors import UserInputError
from erphub.runtime import Hub


def _config(tmp_path: Path, endpoints: str) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(f"""\
version: 1
store: {{url: "sqlite:///{tmp_path}/s.db"}}
systems:
  crm:
    connector: jiandaoyun
    settings: {{base_url: "http://127.0.0.1:9", app_id: crm_app_0001}}
    secrets: {{api_key: "${{env:ENDPOINT_TEST_KEY}}"}}
    rate_limit: {{endpoints: {endpoints}}}
pipelines: {{}}
""", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDPOINT_TEST_KEY", "k")


def _turns_without_waiting(bucket: object, limit: int) -> int:
    """How many turns in a row the bucket grants at once (a frozen instant: no time passes between)."""
    for taken in range(limit):
        if bucket.reserve() > 0:  # type: ignore[attr-defined]
            return taken
    return limit


def test_a_configured_endpoint_limit_replaces_the_vendors_and_the_others_stay(tmp_path: Path) -> None:
    assert ENDPOINT_RATES["data/list"] == 30.0  # the public service's limit that the config lifts
    with Hub(load_config(_config(tmp_path, "{data/list: 60}"))) as hub:
        endpoints = hub.connector("crm").http.limiter._endpoints  # type: ignore[attr-defined]
        listed = _turns_without_waiting(endpoints["data/list"], 100)
        fetched = _turns_without_waiting(endpoints["data/get"], 100)
    assert listed == 60, "data/list grants its configured 60 a second at once"
    assert fetched == 30, "data/get keeps the vendor's documented 30 a second"


def test_an_endpoint_the_connector_does_not_know_is_an_error_at_the_field(tmp_path: Path) -> None:
    with Hub(load_config(_config(tmp_path, "{data/lists: 60}"))) as hub, \
            pytest.raises(UserInputError, match="no per-endpoint limit named 'data/lists'") as caught:
        hub.connector("crm")
    rendered = caught.value.render()
    assert "hub.yaml:8:" in rendered and "rate_limit.endpoints.data/lists" in rendered
    assert "data/list," in rendered  # the names it does know
