"""A system's `rate_limit` as the hub reads it.

`shared: true`: the connector's limiter takes the store's bucket (the hub migrates the store first, so
the bucket's table is there), and a store that cannot hold it is a config error at the field.
`endpoints`: replaces the connector's documented per-endpoint limits (a private deployment's own quota)
and leaves the others as the vendor documents them; a name the connector does not know is a config
error at the field (tests/unit/cli/bad_inputs.py has the CLI's answer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from erphub.config.loader import load_config
from erphub.connectors.jiandaoyun import ENDPOINT_RATES
from erphub.connectors.shared_limit import TABLE, PostgresTokenBucket
from erphub.core.errors import UserInputError
from erphub.runtime import Hub
from tests.conftest import postgres_rows


def _config(tmp_path: Path, store_url: str, rate_limit: str = "per_second: 5, shared: true") -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(f"""\
version: 1
store: {{url: "{store_url}"}}
systems:
  crm:
    connector: jiandaoyun
    settings: {{base_url: "http://127.0.0.1:9", app_id: crm_app_0001}}
    secrets: {{api_key: "${{env:SHARED_TEST_KEY}}"}}
    rate_limit: {{{rate_limit}}}
pipelines: {{}}
""", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARED_TEST_KEY", "k")


def test_shared_needs_a_postgresql_store(tmp_path: Path) -> None:
    with Hub(load_config(_config(tmp_path, f"sqlite:///{tmp_path}/s.db"))) as hub, \
            pytest.raises(UserInputError, match="PostgreSQL") as caught:
        hub.connector("crm")
    assert "rate_limit.shared" in caught.value.render()


@pytest.mark.postgres
def test_shared_puts_the_systems_bucket_in_the_store(tmp_path: Path, postgres_schema: str) -> None:
    # A store nothing has opened yet: the hub migrates it before the bucket's first turn.
    with Hub(load_config(_config(tmp_path, postgres_schema))) as hub:
        limiter = hub.connector("crm").http.limiter  # type: ignore[attr-defined]
        assert isinstance(limiter._global, PostgresTokenBucket)
        assert limiter._global.name == "crm" and limiter._global.rate == 5
        limiter.wait_turn()
    assert [name for name, in postgres_rows(postgres_schema, f"select name from {TABLE}")] == ["crm"]


def test_shared_needs_a_rate(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    with Hub(load_config(_config(tmp_path, url, rate_limit="shared: true"))) as hub, \
            pytest.raises(UserInputError, match="per_second"):
        hub.connector("crm")


def _turns_without_waiting(bucket: object, limit: int) -> int:
    """How many turns in a row the bucket grants at once (no time passes between them)."""
    for taken in range(limit):
        if bucket.reserve() > 0:  # type: ignore[attr-defined]
            return taken
    return limit


def test_a_configured_endpoint_limit_replaces_the_vendors_and_the_others_stay(tmp_path: Path) -> None:
    assert ENDPOINT_RATES["data/list"] == 30.0  # the public service's limit that the config lifts
    with Hub(load_config(_config(tmp_path, f"sqlite:///{tmp_path}/s.db", "endpoints: {data/list: 60}"))) as hub:
        endpoints = hub.connector("crm").http.limiter._endpoints  # type: ignore[attr-defined]
        listed = _turns_without_waiting(endpoints["data/list"], 100)
        fetched = _turns_without_waiting(endpoints["data/get"], 100)
    assert listed == 60, "data/list grants its configured 60 a second at once"
    assert fetched == 30, "data/get keeps the vendor's documented 30 a second"


def test_an_endpoint_the_connector_does_not_know_is_an_error_at_the_field(tmp_path: Path) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path}/s.db", "endpoints: {data/lists: 60}")
    with Hub(load_config(config)) as hub, \
            pytest.raises(UserInputError, match="no per-endpoint limit named 'data/lists'") as caught:
        hub.connector("crm")
    rendered = caught.value.render()
    assert "hub.yaml:8:" in rendered and "rate_limit.endpoints.data/lists" in rendered
    assert "data/list," in rendered  # the names it does know
