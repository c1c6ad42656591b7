"""The hub config the live monitoring tests (test_alerts_live.py, test_pushgateway_live.py, and
test_runbook.py through test_alerts_live) share: a Jiandaoyun CRM and a Kingdee ERP (sandboxes on
loopback) and a staging SQLite database (its staging and mirror tables), with the secrets they read from
the environment."""

from __future__ import annotations

import sqlalchemy as sa

JDY_KEY = "live-jdy-key"  # the Jiandaoyun sandbox's key
# What the shared systems' secrets read; the Kingdee password is wrong, so the ERP fails auth.
SECRETS_ENV = {"LIVE_JDY_KEY": JDY_KEY, "LIVE_KD_PASSWORD": "not-the-password"}

# A `str.format` template: {tmp} (the test's folder), {crm_url}, {erp_url} (the sandboxes' base URLs).
SYSTEMS = """\
  crm:
    connector: jiandaoyun
    settings: {{base_url: "{crm_url}"}}
    secrets: {{api_key: "${{env:LIVE_JDY_KEY}}"}}
  erp:
    connector: kingdee
    settings: {{server_url: "{erp_url}/k3cloud/", acct_id: "66b2a4c1e9d30f", username: erphub, auth_mode: password,
               lcid: 2052, org_number: "100"}}
    secrets: {{password: "${{env:LIVE_KD_PASSWORD}}"}}
    retry: {{max_attempts: 2, max_seconds: 2}}
  staging:
    connector: sql
    settings:
      url: "sqlite:///{tmp}/staging.db"
      entities: {{customer: {{table: stg_customer, key_column: code}}}}
  mirror:
    connector: sql
    settings:
      url: "sqlite:///{tmp}/staging.db"
      entities: {{customer: {{table: stg_mirror, key_column: code}}}}
"""

STAGING_MAPPING = """\
source: customer
target: customer
key: code
fields:
  code: {from: customer_code}
  name: {from: customer_name}
"""


def live_config(head: str, pipelines: str, *, more_systems: str = "") -> str:
    """A config template: HEAD (store, serve, metrics ...), the shared systems and MORE_SYSTEMS, then
    PIPELINES (the body of `pipelines:`). Fill it with `.format(tmp=..., crm_url=..., erp_url=..., ...)`."""
    return f"{head}systems:\n{SYSTEMS}{more_systems}pipelines:\n{pipelines}"


def create_staging_tables(conn: sa.Connection) -> None:
    """The staging table of the healthy pipeline, and the mirror table the drifting pipeline writes."""
    for table in ("stg_customer", "stg_mirror"):
        conn.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, code TEXT UNIQUE, "
                             "name TEXT, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
