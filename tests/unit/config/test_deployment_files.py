"""A deployment's own files are what runs: no packaged fallback, lookups and state beside the config,
private files, and every problem of a config reported at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from erphub.config.loader import load_config
from erphub.core.errors import ConfigError, ConfigProblems
from erphub.store import Store

CONFIG = """\
version: 1
systems:
  crm: {connector: memory, settings: {system: crm}, secrets: {api_key: "${file:key.txt}"}}
  erp: {connector: memory, settings: {system: erp}}
pipelines:
  customers:
    source: {system: crm, entity: customer}
    target: {system: erp, entity: customer}
    mapping: ../mappings/pair/customer.yaml
"""


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "mappings" / "pair").mkdir(parents=True)
    (tmp_path / "mappings" / "lookups").mkdir()
    (tmp_path / "mappings" / "pair" / "customer.yaml").write_text("source: {entity: customer}\n", encoding="utf-8")
    key = tmp_path / "config" / "key.txt"
    key.write_text("k-1\n", encoding="utf-8")
    key.chmod(0o600)
    config = tmp_path / "config" / "hub.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


def test_a_missing_config_is_an_error_that_says_where_it_looked(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("config/demo.yaml")  # the default name: never the packaged demo in its place
    assert str(tmp_path / "config" / "demo.yaml") in caught.value.render()


def test_lookups_and_state_resolve_from_the_config(deployment: Path) -> None:
    loaded = load_config(deployment, environ={})
    assert loaded.lookups_dir("customers") == deployment.parent.parent / "mappings" / "lookups"
    assert loaded.state_dir == deployment.parent / ".erphub"
    assert loaded.store_url() == f"sqlite:///{deployment.parent / '.erphub' / 'erphub.db'}"
    deployment.write_text("lookups: ../codes\nstate_dir: /var/lib/erphub-test-state\n" + CONFIG, encoding="utf-8")
    loaded = load_config(deployment, environ={})
    assert loaded.lookups_dir("customers") == deployment.parent.parent / "codes"
    assert loaded.state_dir == Path("/var/lib/erphub-test-state")


def test_the_store_is_private_whatever_the_umask(deployment: Path) -> None:
    old = os.umask(0o022)
    try:
        url = load_config(deployment, environ={}).store_url()
        Store(url).close()
    finally:
        os.umask(old)
    db = Path(url[len("sqlite:///"):])
    assert db.stat().st_mode & 0o777 == 0o600
    assert db.parent.stat().st_mode & 0o777 == 0o700


def test_a_secret_file_others_can_read_is_a_warning_and_with_strict_an_error(deployment: Path) -> None:
    (deployment.parent / "key.txt").chmod(0o644)
    loaded = load_config(deployment, environ={})
    assert len(loaded.warnings) == 1 and "chmod 600" in loaded.warnings[0].message
    with pytest.raises(ConfigError) as caught:
        load_config(deployment, environ={}, strict=True)
    assert caught.value.line == 3 and caught.value.field == "systems.crm.secrets.api_key"


def test_every_problem_of_the_file_is_reported_at_once(deployment: Path) -> None:
    text = CONFIG.replace('"${file:key.txt}"', '"${env:KEY:-fallback}"').replace(
        "system: erp}}", "system: erp}, secrets: {token: \"${env:BLANK}\"}}")
    text += "    batch_size: lots\n    page_sise: 5\n"
    deployment.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigProblems) as caught:
        load_config(deployment, environ={"BLANK": "   "})
    rendered = caught.value.render().splitlines()
    assert len(rendered) == 4, rendered
    assert "a secret takes no default" in rendered[0] and ":3:" in rendered[0]
    assert "secret is empty" in rendered[1] and ":4:" in rendered[1]
    assert "pipelines.customers.batch_size" in rendered[2] and "pipelines.customers.page_sise" in rendered[3]
