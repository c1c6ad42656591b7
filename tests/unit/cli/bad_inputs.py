"""A corpus of bad inputs, as a new operator makes them: config, mappings, `mapping test` input, CLI
arguments and webhook bodies. Each case says what a clear answer is: the exit code (or HTTP status)
and where the answer must point (`file:line:` and the field, or the CLI argument's name).

`python -m tests.unit.cli.bad_inputs` prints the counts (clear / accepted rightly / unclear /
traceback / wrong); tests/unit/cli/test_bad_input_corpus.py fails on anything but clear or rightly
accepted.

Verdicts:
    clear       the expected exit code, `error:` pointing where the case says, no traceback
    accepted    a case that is fine (or only a warning) ran with exit 0
    unclear     refused, but without saying where (or with another exit code than 2)
    traceback   a Python traceback or an exception escaped the CLI
    wrong       a bad input was accepted (exit 0)
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_CONFIG = """\
version: 1
store:
  url: sqlite:///../state/hub.db
serve:
  port: 9464
  webhooks:
    push: {kind: hmac, secret: "${env:PUSH_SECRET}"}
systems:
  crm:
    connector: memory
    settings: {system: crm, entities: {customer: code}}
  erp:
    connector: memory
    settings: {system: erp, entities: {customer: code}}
  jdy:
    connector: jiandaoyun
    settings: {base_url: "https://api.jiandaoyun.com", app_id: a1}
    secrets: {api_key: "${env:CRM_KEY}"}
pipelines:
  customers:
    source: {system: crm, entity: customer}
    target: {system: erp, entity: customer}
    mapping: ../mappings/pair/customer.yaml
    schedule: "*/15 * * * *"
    webhook: {source: push}
    batch_size: 50
"""

BASE_MAPPING = """\
source: customer
target: customer
key: code
fields:
  code:
    from: code
  name:
    from: name
    lookup: {table: names, key: crm, value: erp, on_missing: pass}
"""

ENV = {"CRM_KEY": "crm-key-123", "PUSH_SECRET": "push-secret-456"}
CONFIG = "config/hub.yaml"
MAPPING = "mappings/pair/customer.yaml"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))


@dataclass
class Case:
    """One bad (or rightly accepted) input. `args` may use {dir}, {config}, {mapping}, {port_in_use}."""

    name: str
    args: list[str]
    files: dict[str, str | bytes] = dataclasses.field(default_factory=dict)  # written over the base deployment
    where: str = ""  # what the error must name: a file:line, a field, an argument; {line:TEXT} is TEXT's line
    field: str = ""  # and, for file errors, the dotted field
    code: int = 2
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    mode: dict[str, int] = dataclasses.field(default_factory=dict)  # chmod after writing
    kind: str = "cli"  # or "webhook"
    cwd: str = ""  # the folder (inside the deployment) the command runs from
    links: dict[str, str] = dataclasses.field(default_factory=dict)  # symlink -> target


def config_case(name: str, old: str, new: str, *, at: str | None = None, fieldname: str = "", code: int = 2,
                args: tuple[str, ...] = ("validate",), where: str | None = None, **extra: Any) -> Case:
    """The base config with `old` replaced by `new`; the error must point at the line holding `at`."""
    assert old in BASE_CONFIG, old
    text = BASE_CONFIG.replace(old, new, 1)
    line = ""
    if where is None:
        added = [line for line in new.splitlines() if line.strip() and line not in old.splitlines()]
        anchor = at if at is not None else added[0].strip() if added else ""
        number = next((i for i, text_line in enumerate(text.splitlines(), 1) if anchor and anchor in text_line), None)
        line = f"hub.yaml:{number}:" if number else "hub.yaml:"
    return Case(name, [*args, "--config", "{config}"], files={CONFIG: text, **extra.pop("files", {})},
                where=line if where is None else where, field=fieldname, code=code, **extra)


def mapping_case(name: str, text: str | bytes, *, where: str = "customer.yaml:", fieldname: str = "",
                 via: str = "check") -> Case:
    args = ["mapping", "check", "{mapping}"] if via == "check" else ["validate", "--config", "{config}"]
    return Case(name, args, files={MAPPING: text}, where=where, field=fieldname)


def _cases() -> list[Case]:
    c: list[Case] = []
    # -- config files: the file itself ----------------------------------------------------------
    c += [
        Case("config missing", ["validate", "--config", "{dir}/nope.yaml"], where="nope.yaml", field="--config"),
        Case("default config missing", ["status"], where="config/demo.yaml", field="--config"),
        Case("config is a folder", ["validate", "--config", "{dir}/config"], where="config", field="--config"),
        Case("config empty", ["validate", "--config", "{config}"], files={CONFIG: ""}, where="hub.yaml:1"),
        Case("config a list", ["validate", "--config", "{config}"], files={CONFIG: "- a\n- b\n"}, where="hub.yaml:1"),
        Case("config a scalar", ["validate", "--config", "{config}"], files={CONFIG: "hello\n"}, where="hub.yaml:1"),
        Case("config bad yaml", ["validate", "--config", "{config}"], files={CONFIG: "systems: [a\n"},
             where="hub.yaml:2"),
        Case("config tab indent", ["validate", "--config", "{config}"],
             files={CONFIG: "systems:\n\tcrm: {}\n"}, where="hub.yaml:2"),
        Case("config duplicate key", ["validate", "--config", "{config}"],
             files={CONFIG: BASE_CONFIG + "systems: {}\n"}, where="hub.yaml:"),
        Case("config not utf-8", ["validate", "--config", "{config}"], files={CONFIG: b"version: \xff\xfe1\n"},
             where="hub.yaml"),
        Case("config binary", ["validate", "--config", "{config}"], files={CONFIG: b"\x00\x01\x02PK\x03\x04"},
             where="hub.yaml"),
        Case("config too large", ["validate", "--config", "{config}"],
             files={CONFIG: BASE_CONFIG + "# " + "x" * (5 * 1024 * 1024) + "\n"}, where="hub.yaml", field="too large"),
        Case("config alias bomb", ["validate", "--config", "{config}"], files={CONFIG: BOMB}, where="hub.yaml",
             field="aliases"),
        Case("config self alias", ["validate", "--config", "{config}"], files={CONFIG: "a: &a [*a]\n"},
             where="hub.yaml"),
        Case("config deep nesting", ["validate", "--config", "{config}"],
             files={CONFIG: "a: " + "[" * 5000 + "]" * 5000 + "\n"}, where="hub.yaml", field="nested"),
        Case("config deep block nesting", ["validate", "--config", "{config}"],
             files={CONFIG: "a:\n" + "".join("  " * i + "k:\n" for i in range(1, 200))}, where="hub.yaml",
             field="nested"),
        Case("config under a file", ["validate", "--config", "{config}/hub.yaml"], where="hub.yaml/hub.yaml",
             field="--config"),
        Case("config a dangling link", ["validate", "--config", "{dir}/link.yaml"], where="link.yaml",
             field="--config", links={"link.yaml": "gone.yaml"}),
    ]
    # -- config: fields ---------------------------------------------------------------------------
    c += [
        config_case("unknown top-level field", "version: 1", "version: 1\nsytems: {}", fieldname="sytems"),
        config_case("version 2", "version: 1", "version: 2", fieldname="version"),
        config_case("systems missing", "systems:\n  crm:", "other:\n  crm:", at="version", where="hub.yaml:",
                    fieldname="systems"),
        config_case("systems a list", "systems:\n  crm:\n    connector: memory\n"
                    "    settings: {system: crm, entities: {customer: code}}\n",
                    "systems: [crm]\n  erp:\n", at="systems:", where="hub.yaml:"),
        config_case("system name uppercase", "  crm:\n    connector: memory", "  CRM:\n    connector: memory",
                    at="CRM:", fieldname="systems"),
        config_case("pipeline name with space", "  customers:", "  'my customers':", fieldname="pipelines"),
        config_case("unknown connector", "    connector: memory\n    settings: {system: crm",
                    "    connector: memroy\n    settings: {system: crm", fieldname="systems.crm.connector"),
        config_case("connector missing", "    connector: memory\n    settings: {system: erp",
                    "    settings: {system: erp", at="  erp:", fieldname="systems.erp.connector"),
        config_case("system field typo", "    connector: memory\n    settings: {system: erp",
                    "    connector: memory\n    setings: {system: erp", fieldname="systems.erp.setings"),
        config_case("settings a list", "settings: {system: erp, entities: {customer: code}}",
                    "settings: [erp]", fieldname="systems.erp.settings"),
        config_case("connector setting unknown", "settings: {system: erp, entities: {customer: code}}",
                    "settings: {system: erp, entities: {customer: code}, colour: blue}",
                    fieldname="systems.erp.settings.colour"),
        config_case("connector setting missing", "settings: {system: erp, entities: {customer: code}}",
                    "settings: {entities: {customer: code}}", fieldname="systems.erp.settings.system"),
        config_case("secret inline", '    secrets: {api_key: "${env:CRM_KEY}"}', "    secrets: {api_key: hunter2}",
                    fieldname="systems.jdy.secrets.api_key"),
        config_case("secret env unset", '"${env:CRM_KEY}"', '"${env:NO_SUCH_KEY}"', at="NO_SUCH_KEY",
                    fieldname="systems.jdy.secrets.api_key"),
        config_case("secret env default", '"${env:CRM_KEY}"', '"${env:CRM_KEY:-x}"', at="CRM_KEY:-x",
                    fieldname="systems.jdy.secrets.api_key"),
        config_case("secret empty", '"${env:CRM_KEY}"', '"${env:EMPTY_KEY}"', at="EMPTY_KEY",
                    fieldname="systems.jdy.secrets.api_key", env={"EMPTY_KEY": ""}),
        config_case("secret only spaces", '"${env:CRM_KEY}"', '"${env:SPACES_KEY}"', at="SPACES_KEY",
                    fieldname="systems.jdy.secrets.api_key", env={"SPACES_KEY": "   "}),
        config_case("secret file missing", '"${env:CRM_KEY}"', '"${file:nokey.txt}"', at="nokey",
                    fieldname="systems.jdy.secrets.api_key"),
        config_case("secret file a folder", '"${env:CRM_KEY}"', '"${file:.}"', at="file:.",
                    fieldname="systems.jdy.secrets.api_key"),
        config_case("secret file empty", '"${env:CRM_KEY}"', '"${file:key.txt}"', at="key.txt",
                    fieldname="systems.jdy.secrets.api_key", files={"config/key.txt": "\n"},
                    mode={"config/key.txt": 0o600}),
        config_case("secret file not utf-8", '"${env:CRM_KEY}"', '"${file:key.txt}"', at="key.txt",
                    fieldname="systems.jdy.secrets.api_key", files={"config/key.txt": b"\xff\xfe"},
                    mode={"config/key.txt": 0o600}),
        config_case("secret file world-readable (warning)", '"${env:CRM_KEY}"', '"${file:key.txt}"', code=0,
                    where="", files={"config/key.txt": "k-1\n"}, mode={"config/key.txt": 0o644}),
        config_case("secret file world-readable --strict", '"${env:CRM_KEY}"', '"${file:key.txt}"', at="key.txt",
                    fieldname="systems.jdy.secrets.api_key", args=("validate", "--strict"),
                    files={"config/key.txt": "k-1\n"}, mode={"config/key.txt": 0o644}),
        config_case("secret ref malformed", '"${env:CRM_KEY}"', '"${env:}"', at="${env:}",
                    fieldname="systems.jdy.secrets.api_key"),
        config_case("secret ref bad name", '"${env:CRM_KEY}"', '"${env:1BAD}"', at="1BAD",
                    fieldname="systems.jdy.secrets.api_key"),
        config_case("secrets a list", '    secrets: {api_key: "${env:CRM_KEY}"}', "    secrets: [a]",
                    fieldname="systems.jdy.secrets"),
        config_case("setting that is a secret", "settings: {system: erp, entities: {customer: code}}",
                    "settings: {system: erp, entities: {customer: code}, password: x}",
                    fieldname="systems.erp.settings"),
        config_case("setting env unset", "settings: {system: erp,", "settings: {system: '${env:NO_TENANT}',",
                    at="NO_TENANT", fieldname="systems.erp.settings.system"),
        config_case("env setting default is fine", "settings: {system: erp,",
                    "settings: {system: '${env:NO_TENANT:-erp}',", code=0, where=""),
        config_case("env_files missing", "version: 1", "version: 1\nenv_files: [none.env]", at="none.env",
                    fieldname="env_files[0]"),
        config_case("env_files bad line", "version: 1", "version: 1\nenv_files: [bad.env]",
                    files={"config/bad.env": "GOOD=1\nthis is not a pair\n"}, where="bad.env:2"),
        config_case("env_files not a list", "version: 1", "version: 1\nenv_files: bad.env", fieldname="env_files"),
        config_case("store url not a database", "url: sqlite:///../state/hub.db", "url: notadb://x",
                    fieldname="store.url"),
        config_case("store url port not a number", "url: sqlite:///../state/hub.db",
                    "url: postgresql+psycopg://u@db:port/x", fieldname="store.url"),
        config_case("store url a database the store does not run on", "url: sqlite:///../state/hub.db",
                    "url: mysql+pymysql://u@db/x", fieldname="store.url"),
        config_case("store url garbage", "url: sqlite:///../state/hub.db", "url: ':::'", fieldname="store.url"),
        config_case("store url a number", "url: sqlite:///../state/hub.db", "url: 5", fieldname="store.url"),
        config_case("store field typo", "url: sqlite:///../state/hub.db", "uri: sqlite:///x.db",
                    fieldname="store.uri"),
        config_case("serve port too big", "  port: 9464", "  port: 70000", fieldname="serve.port"),
        config_case("serve port text", "  port: 9464", "  port: http", fieldname="serve.port"),
        config_case("webhook kind unknown", "{kind: hmac,", "{kind: hmca,", fieldname="serve.webhooks.push.kind"),
        config_case("webhook secret inline", '{kind: hmac, secret: "${env:PUSH_SECRET}"}',
                    "{kind: hmac, secret: plain}", fieldname="serve.webhooks.push.secret"),
        config_case("webhook secret missing", '{kind: hmac, secret: "${env:PUSH_SECRET}"}', "{kind: hmac}",
                    fieldname="serve.webhooks.push.secret"),
        config_case("webhook max_age negative", '{kind: hmac, secret: "${env:PUSH_SECRET}"}',
                    '{kind: hmac, secret: "${env:PUSH_SECRET}", max_age_s: -1}',
                    fieldname="serve.webhooks.push.max_age_s"),
        config_case("inbox attempts zero", "  port: 9464", "  port: 9464\n  inbox: {max_attempts: 0}",
                    at="max_attempts", fieldname="serve.inbox.max_attempts"),
        config_case("rate limit negative", "    connector: memory\n    settings: {system: erp",
                    "    connector: memory\n    rate_limit: {per_second: -3}\n    settings: {system: erp",
                    at="per_second", fieldname="systems.erp.rate_limit.per_second"),
        config_case("endpoint rate unknown", '    secrets: {api_key: "${env:CRM_KEY}"}',
                    '    secrets: {api_key: "${env:CRM_KEY}"}\n    rate_limit: {endpoints: {data/lst: 60}}',
                    at="data/lst", fieldname="systems.jdy.rate_limit.endpoints.data/lst"),
        config_case("endpoint rate zero", '    secrets: {api_key: "${env:CRM_KEY}"}',
                    '    secrets: {api_key: "${env:CRM_KEY}"}\n    rate_limit: {endpoints: {data/list: 0}}',
                    at="data/list", fieldname="systems.jdy.rate_limit.endpoints.data/list"),
        config_case("timeouts zero", "    connector: memory\n    settings: {system: erp",
                    "    connector: memory\n    timeouts: {connect_s: 0}\n    settings: {system: erp",
                    at="connect_s", fieldname="systems.erp.timeouts.connect_s"),
        config_case("retry attempts 100", "    connector: memory\n    settings: {system: erp",
                    "    connector: memory\n    retry: {max_attempts: 100}\n    settings: {system: erp",
                    at="max_attempts", fieldname="systems.erp.retry.max_attempts"),
        config_case("pipeline unknown system", "source: {system: crm,", "source: {system: cmr,",
                    fieldname="pipelines.customers.source.system"),
        config_case("pipeline unknown entity", "target: {system: erp, entity: customer}",
                    "target: {system: erp, entity: custmer}", fieldname="pipelines.customers.target.entity"),
        config_case("pipeline source missing", "    source: {system: crm, entity: customer}\n", "",
                    at="  customers:", fieldname="pipelines.customers.source"),
        config_case("pipeline field typo", "    batch_size: 50", "    batch_sise: 50",
                    fieldname="pipelines.customers.batch_sise"),
        config_case("batch size zero", "    batch_size: 50", "    batch_size: 0",
                    fieldname="pipelines.customers.batch_size"),
        config_case("batch size text", "    batch_size: 50", "    batch_size: fifty",
                    fieldname="pipelines.customers.batch_size"),
        config_case("page size huge", "    batch_size: 50", "    page_size: 1000000",
                    fieldname="pipelines.customers.page_size"),
        config_case("schedule not cron", 'schedule: "*/15 * * * *"', 'schedule: "every 15 minutes"',
                    fieldname="pipelines.customers.schedule"),
        config_case("schedule 61st minute", 'schedule: "*/15 * * * *"', 'schedule: "61 * * * *"',
                    fieldname="pipelines.customers.schedule"),
        config_case("webhook unknown source", "webhook: {source: push}", "webhook: {source: pull}",
                    fieldname="pipelines.customers.webhook.source"),
        config_case("mapping missing", "mapping: ../mappings/pair/customer.yaml", "mapping: ../mappings/none.yaml",
                    fieldname="pipelines.customers.mapping"),
        config_case("mapping a folder", "mapping: ../mappings/pair/customer.yaml", "mapping: ../mappings",
                    fieldname="pipelines.customers.mapping"),
        config_case("two_way reverse missing", "    batch_size: 50", "    two_way: {reverse: back}",
                    fieldname="pipelines.customers.two_way.reverse"),
        config_case("two_way rule unknown", "    batch_size: 50", "    two_way: {reverse: x, conflict_rule: coin}",
                    fieldname="pipelines.customers.two_way.conflict_rule"),
        config_case("write_back value unknown", "    batch_size: 50", "    write_back: {field: x, value: id}",
                    fieldname="pipelines.customers.write_back.value"),
        config_case("enabled not a bool", "    batch_size: 50", "    enabled: maybe",
                    fieldname="pipelines.customers.enabled"),
        config_case("lookups folder missing", "version: 1", "version: 1\nlookups: ../nowhere",
                    where="customer.yaml:", fieldname="nowhere"),
        config_case("state_dir a number", "version: 1", "version: 1\nstate_dir: 5", fieldname="state_dir"),
        config_case("state_dir and lookups set", "version: 1",
                    "version: 1\nstate_dir: ../var\nlookups: ../mappings/lookups", code=0, where=""),
        config_case("three problems at once", "    batch_size: 50",
                    "    batch_size: 0\n    page_size: 0\n    lag_seconds: -1",
                    fieldname="pipelines.customers.lag_seconds"),
    ]
    # -- system URLs (real connectors; validate never connects) ------------------------------------
    for label, url in (("htp scheme", "htp://api.example.com"), ("one slash", "http:/api.example.com"),
                       ("no scheme", "api.example.com"), ("bad port", "http://api.example.com:99999"),
                       ("empty", "")):
        c.append(config_case(f"system url {label}", '"https://api.jiandaoyun.com"', f"'{url}'", at="base_url",
                             fieldname="systems.jdy.settings.base_url"))
    # -- Salesforce client credentials: the org's My Domain, never the shared login hosts -------------
    jdy_end = '    secrets: {api_key: "${env:CRM_KEY}"}\npipelines:'

    def with_salesforce(settings: str) -> str:
        return ('    secrets: {api_key: "${env:CRM_KEY}"}\n  sf:\n    connector: salesforce\n'
                f'    settings: {settings}\n    secrets: {{client_secret: "${{env:CRM_KEY}}"}}\npipelines:')
    for label, settings in (("default login url", "{client_id: c1}"),
                            ("login.salesforce.com", "{client_id: c1, login_url: 'https://login.salesforce.com'}"),
                            ("test.salesforce.com", "{client_id: c1, login_url: 'https://TEST.salesforce.com/'}")):
        c.append(config_case(f"salesforce client credentials at {label}", jdy_end, with_salesforce(settings),
                             at="client_id: c1", fieldname="systems.sf.settings.login_url"))
    c.append(config_case("salesforce client credentials at a My Domain", jdy_end,
                         with_salesforce("{client_id: c1, login_url: 'https://acme.my.salesforce.com'}"),
                         code=0, where=""))
    # -- mapping files ----------------------------------------------------------------------------
    c += [
        mapping_case("mapping bad yaml", "source: customer\nfields: [a\n", where="customer.yaml:3"),
        mapping_case("mapping empty", "", where="customer.yaml"),
        mapping_case("mapping a list", "- a\n", where="customer.yaml:1"),
        mapping_case("mapping unknown transform", BASE_MAPPING.replace("    from: code\n",
                     "    from: code\n    transforms: [no_such]\n"), where="customer.yaml:7", fieldname="no_such"),
        mapping_case("mapping unknown key", BASE_MAPPING + "colour: blue\n", where="customer.yaml:10",
                     fieldname="colour"),
        mapping_case("mapping source missing", BASE_MAPPING.replace("source: customer\n", ""),
                     where="customer.yaml", fieldname="source"),
        mapping_case("mapping unknown lookup table", BASE_MAPPING.replace("table: names", "table: nope"),
                     where="customer.yaml:9", fieldname="nope"),
        mapping_case("mapping lookup column", BASE_MAPPING.replace("key: crm", "key: sku"), where="customer.yaml:9",
                     fieldname="sku"),
        mapping_case("mapping bad regex", BASE_MAPPING.replace("    from: code\n",
                     "    from: code\n    validate: {regex: '([a-z'}\n"), where="customer.yaml:7"),
        mapping_case("mapping bad path", BASE_MAPPING.replace("from: code", "from: 'a..b'"), where="customer.yaml:6"),
        mapping_case("mapping bad condition", BASE_MAPPING + "filter:\n  - when: {path: x, like: y}\n",
                     where="customer.yaml:11"),
        mapping_case("mapping duplicate key", BASE_MAPPING + "key: other\n", where="customer.yaml"),
        mapping_case("mapping alias bomb", BOMB, where="customer.yaml", fieldname="aliases"),
        mapping_case("mapping deep nesting", "source: " + "[" * 3000 + "]" * 3000 + "\n", where="customer.yaml",
                     fieldname="nested"),
        mapping_case("mapping too large", BASE_MAPPING + "# " + "y" * (5 * 1024 * 1024) + "\n",
                     where="customer.yaml", fieldname="too large"),
        mapping_case("mapping not utf-8", b"source: \xff\n", where="customer.yaml"),
        mapping_case("mapping unknown transform via validate", BASE_MAPPING.replace("    from: code\n",
                     "    from: code\n    transforms: [no_such]\n"), where="customer.yaml:7", via="validate"),
        mapping_case("mapping entity mismatch via validate", BASE_MAPPING.replace("target: customer", "target: order"),
                     where="customer.yaml:2", fieldname="target", via="validate"),
        Case("mapping lookup table bad csv", ["mapping", "check", "{mapping}"],
             files={"mappings/lookups/names.csv": "crm,erp\nA,B\nC\n"}, where="names.csv:3"),
        Case("mapping check file missing", ["mapping", "check", "{dir}/none.yaml"], where="none.yaml"),
        Case("mapping check a folder", ["mapping", "check", "{dir}/mappings"], where="mappings"),
        Case("mapping check no mappings here", ["mapping", "check"], where="config/mappings", field="files",
             cwd="config"),
        Case("mapping check --config missing", ["mapping", "check", "--config", "{dir}/nope.yaml"],
             where="nope.yaml"),
        Case("mapping check --config", ["mapping", "check", "--config", "{config}"], code=0),
        Case("mapping check --lookups missing", ["mapping", "check", "{mapping}", "--lookups", "{dir}/none"],
             where="customer.yaml:9", field="none"),
    ]
    # -- mapping test input -----------------------------------------------------------------------
    test = ["mapping", "test", "{mapping}", "--input"]
    c += [
        Case("test input missing", [*test, "{dir}/none.json"], where="none.json", field="--input"),
        Case("test input a folder", [*test, "{dir}"], where=":", field="--input"),
        Case("test input bad json", [*test, "{dir}/in.json"], files={"in.json": '[{"code": 1,}]'}, where="in.json:1:"),
        Case("test input empty", [*test, "{dir}/in.json"], files={"in.json": ""}, where="in.json:1:"),
        Case("test input deep nesting", [*test, "{dir}/in.json"], files={"in.json": "[" * 100_000 + "]" * 100_000},
             where="in.json", field="nested"),
        Case("test input deep objects", [*test, "{dir}/in.json"],
             files={"in.json": '{"a":' * 2000 + "1" + "}" * 2000}, where="in.json", field="nested"),
        Case("test input too large", [*test, "{dir}/in.json"], files={"in.json": "[" + "1," * 3_000_000 + "1]"},
             where="in.json", field="too large"),
        Case("test input not utf-8", [*test, "{dir}/in.json"], files={"in.json": b"[\xff]"}, where="in.json"),
        Case("test input a scalar", [*test, "{dir}/in.json"], files={"in.json": "5"}, code=0),
        Case("test input records", [*test, "{dir}/in.json"], files={"in.json": '{"records": [{"code": "A1"}]}'},
             code=0),
        Case("test --input missing", ["mapping", "test", "{mapping}"], where="--input"),
        Case("test mapping missing", ["mapping", "test", "{dir}/none.yaml", "--input", "{dir}/in.json"],
             files={"in.json": "[]"}, where="none.yaml"),
    ]
    # -- CLI arguments ----------------------------------------------------------------------------
    cfg = ["--config", "{config}"]
    huge = "12345678901234567890123"
    c += [
        Case("dlq show 23-digit id", ["dlq", "show", huge, *cfg], where="letter_id"),
        Case("dlq show negative id", ["dlq", "show", "--", "-5", *cfg], where="letter_id"),
        Case("dlq show text id", ["dlq", "show", "abc", *cfg], where="letter_id"),
        Case("dlq show unknown id", ["dlq", "show", "999", *cfg], where="letter_id"),
        Case("dlq discard 23-digit id", ["dlq", "discard", huge, "--reason", "x", *cfg], where="ids"),
        Case("dlq discard without reason", ["dlq", "discard", "1", *cfg], where="--reason"),
        Case("dlq discard blank reason", ["dlq", "discard", "1", "--reason", "  ", *cfg], where="--reason"),
        Case("dlq discard unknown id", ["dlq", "discard", "999", "--reason", "dup", *cfg], where="ids", field="999"),
        Case("dlq replay 23-digit id", ["dlq", "replay", huge, *cfg], where="ids"),
        Case("dlq replay nothing named", ["dlq", "replay", *cfg], where="--pipeline"),
        Case("dlq replay unknown id", ["dlq", "replay", "999", *cfg], where="999"),
        Case("dlq replay unknown pipeline", ["dlq", "replay", "--pipeline", "nope", *cfg], where="nope"),
        Case("dlq list bogus status", ["dlq", "list", "--status", "bogus", *cfg], where="--status"),
        Case("dlq list unknown pipeline", ["dlq", "list", "--pipeline", "nope", *cfg], where="--pipeline"),
        Case("dlq list negative limit", ["dlq", "list", "--limit", "-5", *cfg], where="--limit"),
        Case("dlq list zero limit", ["dlq", "list", "--limit", "0", *cfg], where="--limit"),
        Case("dlq list text limit", ["dlq", "list", "--limit", "many", *cfg], where="--limit"),
        Case("dlq list all statuses", ["dlq", "list", "--status", "all", *cfg], code=0),
        Case("sandbox port 70000", ["sandbox", "jiandaoyun", "--port", "70000"], where="--port"),
        Case("sandbox port negative", ["sandbox", "jiandaoyun", "--port", "-1"], where="--port"),
        Case("sandbox port in use", ["sandbox", "jiandaoyun", "--port", "{port_in_use}"], where="--port"),
        Case("sandbox unknown", ["sandbox", "sap"], where="sap"),
        Case("run unknown pipeline", ["run", "nope", "--engine", "plain", *cfg], where="nope"),
        Case("run nothing named", ["run", "--engine", "plain", *cfg], where="--all"),
        Case("run names and --all", ["run", "customers", "--all", "--engine", "plain", *cfg], where="--all"),
        Case("run bad --since", ["run", "customers", "--since", "yesterday", *cfg], where="--since"),
        Case("run --until without --since", ["run", "customers", "--until", "2026-01-01", *cfg], where="--until"),
        Case("run --since after --until", ["run", "customers", "--since", "2026-02-01", "--until", "2026-01-01",
                                           *cfg], where="--until"),
        Case("run bad --engine", ["run", "customers", "--engine", "turbo", *cfg], where="--engine"),
        Case("run bad --log-format", ["run", "customers", "--engine", "plain", "--log-format", "xml", *cfg],
             where="--log-format"),
        Case("status config a folder", ["status", "--config", "{dir}"], where="--config"),
        Case("status ERPHUB_CONFIG missing", ["status"], env={"ERPHUB_CONFIG": "/nonexistent/hub.yaml"},
             where="/nonexistent/hub.yaml"),
        Case("systems check unknown system", ["systems", "check", "nope", *cfg], where="nope"),
        Case("conflicts list bogus status", ["conflicts", "list", "--status", "bogus", *cfg], where="--status"),
        Case("conflicts resolve bad take", ["conflicts", "resolve", "1", "--take", "both", *cfg], where="--take"),
        Case("conflicts resolve 23-digit id", ["conflicts", "resolve", huge, "--take", "source", *cfg],
             where="conflict_id"),
        Case("conflicts resolve unknown id", ["conflicts", "resolve", "999", "--take", "source", *cfg],
             where="conflict_id"),
        Case("demo --config refused", ["demo", "--config", "{config}"], where="--config"),
        Case("demo bad engine", ["demo", "--engine", "turbo"], where="--engine"),
        Case("serve port 70000", ["serve", "--port", "70000", "--no-schedules", *cfg], where="--port"),
        Case("serve bad --log-format", ["serve", "--log-format", "xml", "--no-schedules", *cfg],
             where="--log-format"),
        Case("unknown command", ["frobnicate"], where="frobnicate"),
        Case("unknown option", ["validate", "--colour", *cfg], where="--colour"),
        Case("version", ["--version"], code=0),
        Case("validate --json of a good deployment", ["validate", "--json", *cfg], code=0),
    ]
    # -- webhook bodies (POST /webhooks/push through the receiver) --------------------------------
    c += [
        Case("webhook unsigned", ["unsigned"], kind="webhook", code=401, where="bad signature"),
        Case("webhook wrong signature", ["wrong"], kind="webhook", code=401, where="bad signature"),
        Case("webhook stale", ["stale"], kind="webhook", code=401, where="timestamp"),
        Case("webhook not json", ["signed", "not json"], kind="webhook", code=400, where="not JSON"),
        Case("webhook json list", ["signed", "[1, 2]"], kind="webhook", code=400, where="envelope"),
        Case("webhook no op", ["signed", '{"data": {"_id": "1"}}'], kind="webhook", code=400, where="op"),
        Case("webhook no id", ["signed", '{"op": "data_update", "data": {}}'], kind="webhook", code=400,
             where="_id"),
        Case("webhook bad time", ["signed", '{"op": "data_update", "data": {"_id": "1", "updateTime": "soon"}}'],
             kind="webhook", code=400, where="updateTime"),
        Case("webhook deep nesting", ["signed", '{"op": "x", "data": {"_id": "1", "a": ' + "[" * 50_000
                                      + "]" * 50_000 + "}}"], kind="webhook", code=400, where="nested"),
        Case("webhook too large", ["signed", '{"op": "x", "data": {"_id": "1", "a": "' + "z" * (6 * 1024 * 1024)
                                   + '"}}'], kind="webhook", code=413, where="too large"),
        Case("webhook to an unknown source", ["unknown-source"], kind="webhook", code=404, where="unknown"),
        Case("webhook not utf-8", ["signed", b'{"op": "x", "data": {"_id": "\xff"}}'], kind="webhook", code=400,
             where="JSON"),
    ]
    return c


CASES = _cases()


# -- running a case ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    verdict: str
    detail: str


def write_deployment(root: Path, case: Case) -> None:
    files: dict[str, str | bytes] = {CONFIG: BASE_CONFIG, MAPPING: BASE_MAPPING,
                                     "mappings/lookups/names.csv": "crm,erp\nA,B\n", **case.files}
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    for relative, target in case.links.items():
        (root / relative).symlink_to(root / target)
    for relative, mode in case.mode.items():
        (root / relative).chmod(mode)


@contextmanager
def _port_in_use() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _judge(case: Case, code: int, stdout: str, stderr: str, escaped: BaseException | None) -> Outcome:
    text = stdout + stderr
    if escaped is not None or "Traceback (most recent call last)" in text:
        detail = "".join(traceback.format_exception(escaped)) if escaped is not None else text
        return Outcome("traceback", detail[-1500:])
    if case.code == 0:
        return Outcome("accepted", "") if code == 0 else Outcome("unclear", f"exit {code}: {text[-600:]}")
    if code == 0:
        return Outcome("wrong", f"exit 0 for a bad input: {text[-600:]}")
    wanted = [w for w in (case.where, case.field) if w]
    if code != case.code or not all(w in stderr for w in wanted) or not stderr.strip():
        return Outcome("unclear", f"exit {code}, wanted {wanted}: {stderr[-600:] or stdout[-600:]}")
    return Outcome("clear", "")


def run_cli_case(case: Case, root: Path) -> Outcome:
    from typer.testing import CliRunner

    from erphub.cli.main import app

    write_deployment(root, case)
    values = {"dir": str(root), "config": str(root / CONFIG), "mapping": str(root / MAPPING)}
    with _port_in_use() as busy:
        values["port_in_use"] = str(busy)
        args = [a.format(**values) for a in case.args]
        env = {**ENV, **case.env}
        if "ERPHUB_CONFIG" not in env:
            env["ERPHUB_CONFIG"] = None  # type: ignore[assignment]  # CliRunner: unset
        cwd = os.getcwd()
        os.chdir(root / case.cwd)
        try:
            result = CliRunner().invoke(app, args, env=env, catch_exceptions=True)
        finally:
            os.chdir(cwd)
    escaped = result.exception if result.exception and not isinstance(result.exception, SystemExit) else None
    return _judge(case, result.exit_code, result.stdout, result.stderr, escaped)


def run_webhook_case(case: Case, root: Path) -> Outcome:
    import asyncio
    import io

    import httpx
    from starlette.applications import Starlette

    from erphub.config.models import WebhookSource
    from erphub.connectors.webhooks import HMAC_DEFAULT_HEADER, HMAC_TIMESTAMP_HEADER, hmac_signature
    from erphub.monitoring.logging import configure_logging
    from erphub.store import Store
    from erphub.webhooks.receiver import WebhookReceiver

    configure_logging(fmt="json", level="INFO", secrets=[], stream=io.StringIO())  # a CliRunner's stream is closed
    secret = ENV["PUSH_SECRET"]
    root.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{root / 'hooks.db'}")
    receiver = WebhookReceiver({"push": WebhookSource(kind="hmac", secret=secret)}, store,
                               route=lambda source, op: [])
    app = Starlette(routes=receiver.routes())
    how = case.args[0]
    raw = case.args[1] if len(case.args) > 1 else '{"op": "data_update", "data": {"_id": "1"}}'
    body = raw if isinstance(raw, bytes) else raw.encode("utf-8")
    now = time.time()
    stamp = str(int(now - 3600 if how == "stale" else now))
    headers = {HMAC_TIMESTAMP_HEADER: stamp, HMAC_DEFAULT_HEADER: hmac_signature(body, secret, stamp)}
    if how == "unsigned":
        headers = {}
    elif how == "wrong":
        headers[HMAC_DEFAULT_HEADER] = "0" * 64
    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
            return await client.post("/webhooks/nope" if how == "unknown-source" else "/webhooks/push",
                                     content=body, headers=headers)

    try:
        answer = asyncio.run(post())
    except Exception as exc:
        return Outcome("traceback", "".join(traceback.format_exception(exc))[-1500:])
    finally:
        store.close()
    message = answer.json().get("message", "") if answer.headers.get("content-type", "").startswith(
        "application/json") else answer.text
    if answer.status_code == 200:
        return Outcome("wrong", f"accepted: {message}")
    if answer.status_code != case.code or case.where.lower() not in message.lower():
        return Outcome("unclear", f"{answer.status_code} {message!r}, wanted {case.code} {case.where!r}")
    return Outcome("clear", "")


def run_case(case: Case, root: Path) -> Outcome:
    return run_webhook_case(case, root) if case.kind == "webhook" else run_cli_case(case, root)


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    tally = Counter(o.verdict for o in outcomes)
    return {v: tally.get(v, 0) for v in ("clear", "accepted", "unclear", "traceback", "wrong")}


def _one(index: int) -> int:
    """Run one case in this process and print its verdict as JSON (for --isolate)."""
    import json
    import resource
    import tempfile

    limit = 2 * 1024**3  # an alias bomb takes 3 GB on a build without limits: count it, do not swap
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            outcome = run_case(CASES[index], Path(tmp) / "deployment")
        except MemoryError:
            outcome = Outcome("traceback", "MemoryError (over 2 GB)")
    print("\n" + json.dumps({"verdict": outcome.verdict, "detail": outcome.detail}))
    return 0


def _isolated(index: int) -> Outcome:
    """One case in a child process with a memory cap and a time limit: a hang or a crash is counted too."""
    import json
    import subprocess

    try:
        child = subprocess.run([sys.executable, __file__, "--one", str(index)], capture_output=True, text=True,
                               timeout=120)
    except subprocess.TimeoutExpired:
        return Outcome("traceback", "no answer in 120 s")
    last = child.stdout.strip().splitlines()[-1] if child.stdout.strip() else ""
    try:
        found = json.loads(last)
        return Outcome(found["verdict"], found["detail"])
    except (ValueError, KeyError):
        return Outcome("traceback", f"child exit {child.returncode}: {(child.stdout + child.stderr)[-800:]}")


def main(argv: list[str]) -> int:
    """`--isolate`: each case in its own process (counts a build that hangs or runs out of memory)."""
    import tempfile

    if argv[:1] == ["--one"]:
        return _one(int(argv[1]))
    start = int(argv[argv.index("--from") + 1]) if "--from" in argv else 0  # resume a long --isolate run
    outcomes: list[Outcome] = []
    for index, case in enumerate(CASES):
        if index < start:
            continue
        if "--isolate" in argv:
            outcome = _isolated(index)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                outcome = run_case(case, Path(tmp) / f"case{index}")
        outcomes.append(outcome)
        if outcome.verdict not in ("clear", "accepted") or "-v" in argv:
            print(f"[{outcome.verdict}] {case.name}: {outcome.detail[:400]}", flush=True)
    print(f"{len(outcomes)} cases:", counts(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

