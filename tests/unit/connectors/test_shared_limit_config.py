"""`rate_limit: {shared: true}` is read by the hub: the connector's limiter takes the store's bucket (the
hub migrates the store first, so the bucket's table is there), and a store that cannot hold it is a config
error at the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from erphub.config.loader import load_config
from erphub.connectors.shared_limit import TABLE, PostgresTokenBucket
from erphub.core.errors import UserInputError
from erphub.runtime import Hub
from tests.conftest import postgres_rows


def _config(tmp_path: Path, store_url: str, rate: str = "per_second: 5, ") -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(f"""\
version: 1
store: {{url: "{store_url}"}}
systems:
  crm:
    connector: jiandaoyun
    settings: {{base_url: "http://127.0.0.1:9", app_id: crm_app_0001}}
    secrets: {{api_key: "${{env:SHARED_TEST_KEY}}"}}
    rate_limit: {{{rate}shared: true}}
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
    with Hub(load_config(_config(tmp_path, url, rate=""))) as hub, \
            pytest.raises(UserInputError, match="per_second"):
        hub.connector("crm")
