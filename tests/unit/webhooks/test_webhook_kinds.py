"""A webhook kind is a connector capability: an unknown kind fails `erphub serve` / `erphub validate`
as a config error at its file, line and field, naming the valid kinds."""

from __future__ import annotations

from pathlib import Path

import pytest

from erphub.config.loader import LoadedConfig, load_config
from erphub.core.errors import ConfigError
from erphub.runtime import Hub
from erphub.serve import HubServer
from erphub.webhooks.receiver import webhook_verifiers

CONFIG = """\
version: 1
store: {{url: "sqlite:///{db}"}}
serve:
  webhooks:
    good: {{kind: hmac, secret: "${{env:PUSH}}"}}
    push:
      kind: {kind}
      secret: "${{env:PUSH}}"
systems:
  crm: {{connector: memory, settings: {{system: kinds-crm, entities: {{customer: code}}}}}}
pipelines: {{}}
"""


def loaded(tmp_path: Path, kind: str) -> LoadedConfig:
    path = tmp_path / "hub.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "hub.db", kind=kind), encoding="utf-8")
    return load_config(path, environ={"PUSH": "push-secret"})


def assert_points_at_kind(error: ConfigError, tmp_path: Path) -> None:
    assert error.file == str(tmp_path / "hub.yaml")
    assert error.line == 7
    assert error.field == "serve.webhooks.push.kind"
    assert "unknown webhook kind 'acme'; valid kinds: hmac, jiandaoyun" in str(error)
    assert str(error).startswith(f"{tmp_path / 'hub.yaml'}:7:")


def test_known_kinds_resolve_to_their_verifiers(tmp_path: Path) -> None:
    verifiers = webhook_verifiers(loaded(tmp_path, "jiandaoyun"))
    assert sorted(verifiers) == ["good", "push"]


def test_unknown_kind_fails_validate_at_its_line(tmp_path: Path) -> None:
    with Hub(loaded(tmp_path, "acme")) as hub, pytest.raises(ConfigError) as caught:
        hub.validate()
    assert_points_at_kind(caught.value, tmp_path)


def test_unknown_kind_fails_serve_start_at_its_line(tmp_path: Path) -> None:
    server = HubServer(loaded(tmp_path, "acme"))
    try:
        with pytest.raises(ConfigError) as caught:
            server.check()
    finally:
        server.hub.close()
    assert_points_at_kind(caught.value, tmp_path)
