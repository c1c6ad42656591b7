"""The connector registry finds connectors instead of keeping a list of them.

Built-ins come from the modules of `erphub.connectors` (module name = kind), third-party ones from
the `erphub.connectors` entry-point group; an unknown kind names every valid one.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from erphub.connectors import registry
from erphub.connectors.base import ConnectorBase
from erphub.core.errors import ConfigError, UnknownEntity

BUILTIN = {"jiandaoyun", "kingdee", "memory", "salesforce", "sql", "tryton", "yonyou"}
PLUMBING = {"auth", "base", "http", "ratelimit", "registry", "webhooks"}


def test_every_builtin_connector_is_found_without_a_hand_list() -> None:
    assert not hasattr(registry, "_BUILTIN_MODULES")
    kinds = set(registry.known_kinds())
    assert kinds >= BUILTIN
    assert not kinds & PLUMBING
    for kind in BUILTIN:
        cls = registry.connector_class(kind)
        assert cls.kind == kind
        assert cls.__module__.startswith(f"erphub.connectors.{kind}")


def test_unknown_kind_is_a_config_error_listing_the_valid_kinds() -> None:
    with pytest.raises(ConfigError) as caught:
        registry.connector_class("no_such_erp")
    assert "no_such_erp" in caught.value.message
    for kind in BUILTIN:
        assert kind in caught.value.message


def test_looking_up_a_kind_imports_only_its_module() -> None:
    code = ("import sys; from erphub.connectors.registry import connector_class; connector_class('kingdee'); "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['erphub', 'connectors'] "
            "and len(m.split('.')) > 2))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "erphub.connectors.kingdee" in loaded
    for other in BUILTIN - {"kingdee"}:
        assert f"'erphub.connectors.{other}" not in loaded


ACME = '''
from erphub.connectors.base import ConnectorBase, ConnectorSettings
from erphub.connectors.webhooks import Checked, Verdict


class AcmeSettings(ConnectorSettings):
    token: str = ""


class AcmeConnector(ConnectorBase):
    kind = "acme"
    settings_model = AcmeSettings

    @staticmethod
    def verify_webhook(body, query, headers, secret, *, now, max_age_s, options):
        return Checked(Verdict.OK if headers.get("x-acme") == secret else Verdict.BAD_SIGNATURE)
'''


@pytest.fixture()
def acme_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connector installed by another distribution: its module on sys.path, an entry point naming it."""
    (tmp_path / "acme_erphub.py").write_text(textwrap.dedent(ACME), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_point = importlib.metadata.EntryPoint(name="acme", value="acme_erphub:AcmeConnector",
                                                group=registry.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def entry_points(**params: str) -> object:
        if params.get("group") == registry.ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([entry_point])
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_FOUND", {})


@pytest.mark.usefixtures("acme_entry_point")
def test_a_connector_from_an_entry_point_is_found() -> None:
    assert "acme" in registry.known_kinds()
    cls = registry.connector_class("acme")
    assert cls.__name__ == "AcmeConnector" and issubclass(cls, ConnectorBase)
    with pytest.raises(ConfigError) as caught:
        registry.connector_class("no_such_erp")
    assert "acme" in caught.value.message


@pytest.mark.usefixtures("acme_entry_point")
def test_a_connector_that_verifies_webhooks_adds_a_webhook_kind() -> None:
    assert registry.webhook_kinds() == ["acme", "hmac", "jiandaoyun"]
    verify = registry.webhook_verifier("acme")
    assert verify(b"{}", {}, {"x-acme": "s"}, "s", now=0.0, max_age_s=1.0, options={}).verdict == "ok"


def test_unknown_webhook_kind_lists_the_valid_kinds() -> None:
    with pytest.raises(ConfigError) as caught:
        registry.webhook_verifier("kingdee")  # a connector, but it receives no pushes
    assert caught.value.message == "unknown webhook kind 'kingdee'; valid kinds: hmac, jiandaoyun"


def test_connector_spec_of_an_unknown_entity_is_unknown_entity() -> None:
    from erphub.connectors.base import SystemContext
    from erphub.connectors.jiandaoyun import JiandaoyunConnector, JiandaoyunSettings

    connector = JiandaoyunConnector(JiandaoyunSettings(api_key="k"), SystemContext(name="crm"))
    try:
        with pytest.raises(UnknownEntity) as caught:
            connector.spec("invoice")
    finally:
        connector.close()
    assert caught.value.valid == ["customer", "opportunity", "payment", "sales_order"]
    assert "valid entities: customer, opportunity, payment, sales_order" in caught.value.message
