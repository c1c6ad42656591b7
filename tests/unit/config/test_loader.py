"""Config errors name the file, the line and the field; secrets are references, never inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from erphub.config.loader import load_config
from erphub.core.errors import ConfigError

VALID = """\
version: 1
store:
  url: sqlite:///state/erphub.db
systems:
  crm:
    connector: memory
    settings:
      system: crm-${env:TENANT:-demo}
    secrets:
      api_key: ${env:CRM_KEY}
  erp:
    connector: memory
    settings: {system: erp}
pipelines:
  customers:
    source: {system: crm, entity: customer}
    target: {system: erp, entity: customer}
    mapping: m.yaml
    schedule: "*/15 * * * *"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "m.yaml").write_text("source: {entity: customer}\n", encoding="utf-8")
    path = tmp_path / "hub.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ if environ is not None else {"CRM_KEY": "k-123"})
    return caught.value


def test_valid_config_resolves_env_defaults_secrets_and_relative_paths(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, VALID), environ={"CRM_KEY": "k-123"})
    assert loaded.hub.systems["crm"].settings["system"] == "crm-demo"
    assert loaded.hub.systems["crm"].secrets["api_key"].get_secret_value() == "k-123"
    assert "k-123" not in repr(loaded.hub)
    assert loaded.secret_values == ["k-123"]
    assert loaded.store_url() == f"sqlite:///{tmp_path / 'state' / 'erphub.db'}"
    assert loaded.mapping_path("customers") == tmp_path / "m.yaml"


def test_env_file_supplies_variables_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "demo.env").write_text("# demo\nCRM_KEY=from-file\nTENANT=acme\n", encoding="utf-8")
    loaded = load_config(write(tmp_path, "env_files: [demo.env]\n" + VALID), environ={"TENANT": "real"})
    assert loaded.hub.systems["crm"].secrets["api_key"].get_secret_value() == "from-file"
    assert loaded.hub.systems["crm"].settings["system"] == "crm-real"


@pytest.mark.parametrize(
    ("broken", "line", "field", "words"),
    [
        (VALID.replace("    schedule: \"*/15 * * * *\"", "    schedule: \"every day\""), 19,
         "pipelines.customers.schedule", "invalid cron"),
        (VALID.replace("    batch: 1\n", "").replace("    mapping: m.yaml", "    mapping: m.yaml\n    batchsize: 5"),
         19, "pipelines.customers.batchsize", "unknown field"),
        (VALID.replace("target: {system: erp,", "target: {system: erq,"), 17,
         "pipelines.customers.target.system", "unknown system 'erq'"),
        (VALID.replace("api_key: ${env:CRM_KEY}", "api_key: plain-text-key"), 10,
         "systems.crm.secrets.api_key", "never inline"),
        (VALID.replace("mapping: m.yaml", "mapping: missing.yaml"), 18, "pipelines.customers.mapping", "not found"),
        (VALID.replace("  customers:", "  Customers!:"), 15, "pipelines.Customers!", "should match pattern"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, broken: str, line: int, field: str, words: str) -> None:
    error = error_of(write(tmp_path, broken))
    assert error.file == str(tmp_path / "hub.yaml")
    assert (error.line, error.field) == (line, field)
    assert words in error.message
    assert error.render().startswith(f"{tmp_path / 'hub.yaml'}:{line}:")


def test_missing_env_variable_for_a_secret_names_the_variable(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, VALID), environ={})
    assert (error.line, error.field) == (10, "systems.crm.secrets.api_key")
    assert "CRM_KEY is not set" in error.message


def test_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, VALID.replace("  erp:\n", "  erp:\n   - broken: [\n")))
    assert error.line is not None and error.line >= 12
    assert "YAML syntax error" in error.message


def test_a_secret_looking_setting_is_refused(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, VALID.replace("settings: {system: erp}", "settings: {system: erp, password: x}")))
    assert error.field == "systems.erp.settings"
    assert "looks like a secret" in error.message


def test_webhook_secrets_come_from_the_environment_too(tmp_path: Path) -> None:
    webhooks = 'serve:\n  webhooks:\n    jdy: {kind: jiandaoyun, secret: "${env:JDY_PUSH}"}\n'
    text = VALID.replace("store:\n", webhooks + "store:\n")
    loaded = load_config(write(tmp_path, text), environ={"CRM_KEY": "k-123", "JDY_PUSH": "push-secret"})
    assert loaded.hub.serve.webhooks["jdy"].secret.get_secret_value() == "push-secret"
    assert "push-secret" in loaded.secret_values
    error = error_of(write(tmp_path, text.replace("${env:JDY_PUSH}", "inline-secret")))
    assert error.field == "serve.webhooks.jdy.secret"


def test_a_broken_store_url_is_a_config_error_and_its_password_a_secret(tmp_path: Path) -> None:
    broken = VALID.replace("url: sqlite:///state/erphub.db", "url: postgresql+psycopg://hub:${env:PGPW}@db:54x2/hub")
    error = error_of(write(tmp_path, broken), environ={"CRM_KEY": "k-123", "PGPW": "pg-secret-9"})
    assert (error.line, error.field) == (3, "store.url")
    assert "pg-secret-9" not in error.render()
    good = broken.replace(":54x2", ":5432")
    loaded = load_config(write(tmp_path, good), environ={"CRM_KEY": "k-123", "PGPW": "pg-secret-9"})
    assert "pg-secret-9" in loaded.secret_values
