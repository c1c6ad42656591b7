"""Jiandaoyun (简道云) open API v5 sandbox: the CRM app `crm_app_0001` of SCHEMAS.md.

Contract (from `shared/reference/jiandaoyun.md`, and a public transcription of the vendor's
docs hc.jiandaoyun.com/open/11470 for error codes and per-interface limits):

- every call is `POST /api/v5/app/entry/<op>` with a JSON body naming `app_id` and `entry_id`;
  auth is `Authorization: Bearer <API key>`; every error answers HTTP 400 with the vendor's body
  code, as the API does (vendor-gaps.md): a missing/unknown key `{"code": 8301, "msg": "API Key
  鉴权验证失败"}`, a rate excess 8304;
- `data/list`: `data_id` paging (records after that id), always sorted by `_id` ascending,
  `limit` 1..100 (default 10), `fields`, `filter` {rel, cond[{field, type, method, value}]} with
  eq/ne/in/nin (≤200 values)/range (inclusive, null = open)/gt/lt/like/empty/not_empty;
- `data/get`, `data/create`, `data/update` (sub-forms replaced whole; rows keep a correct `_id`),
  `data/delete`, `widget/list`;
- `data/batch_create`: ≤100 records (else 17024), `transaction_id` must be a UUID (else 17025);
  a repeated `transaction_id` (kept 1 hour) overwrites what the first call created and creates
  nothing new; answer `{"status": "success", "success_count": N, "success_ids": [...]}`.
  A record that fails validation is skipped and the rest land (assumed; the vendor only says
  partial failures are retried with the same transaction_id);
- `data/batch_update`: `data_ids` (≤100, else 17023) + one `data`, no sub-forms (17032),
  answer `{"status": "success", "success_count": N}`;
- values are written `{"alias": {"value": v}}`; unknown aliases and wrongly typed values are
  refused (an assumption: the vendor skips required/duplicate checks, not type checks);
- limits per second: list/get 30, create/update/delete 20, batch_create/batch_update 10, and
  50 for the whole team; excess answers HTTP 400 `{"code": 8304, ...}` without Retry-After
  (fault injection's `burst_429` still answers 429: a proxy in front of the API);
- `createTime`/`updateTime` are set by the server (ISO 8601 UTC with ms and Z).

Test-only control, out of process: `POST /__sandbox__/jiandaoyun/touch` `{entry_id, keys|data_ids,
at?, changes?}` bumps updateTime ("a person edited these"), `/seed` `{entry_id, records, at?}`
inserts plain records (many sharing one timestamp), `/clock` `{freeze: iso|null}`. In process:
`sandbox.state` is the `JiandaoyunState`.
"""

from __future__ import annotations

from typing import Any

from erphub.sandbox.common import SandboxApp
from erphub.sandbox.faults import Faults
from erphub.sandbox.jiandaoyun.app import build_app
from erphub.sandbox.jiandaoyun.forms import APP_ID, FORMS, FormDef
from erphub.sandbox.jiandaoyun.seed import SeedSummary, seed
from erphub.sandbox.jiandaoyun.store import JiandaoyunState

DEMO_API_KEY = "jdy-demo-key-7Hq2mZ4xR9"

__all__ = ["APP_ID", "DEMO_API_KEY", "FORMS", "FormDef", "JiandaoyunState", "SeedSummary", "create_sandbox"]


def _error_body(status: int, reason: str) -> dict[str, Any]:
    if status == 429:
        return {"code": 8303, "msg": "公司/团队调用频率超出限制"}
    return {"code": status, "msg": reason}


def create_sandbox(
    *,
    api_key: str = DEMO_API_KEY,
    seed_data: bool = True,
    seed_value: int = 2026,
    enforce_limits: bool = True,
    custom_fields: dict[str, dict[str, str]] | None = None,
    extra_forms: list[FormDef] | None = None,
) -> SandboxApp:
    """`custom_fields` {entry_id: {name: widget type}} adds fields to the CRM forms; `extra_forms` adds
    forms of the customer's own (e.g. one named only by `_widget_...` ids, with labels)."""
    forms = dict(FORMS)
    for entry_id, extra in (custom_fields or {}).items():
        if entry_id not in forms:
            raise ValueError(f"custom_fields: no form {entry_id!r}; forms: {sorted(forms)}")
        forms[entry_id] = forms[entry_id].with_fields(extra)
    for form in extra_forms or []:
        forms[form.entry_id] = form
    state = JiandaoyunState(forms=forms)
    summary = seed(state, seed=seed_value) if seed_data else SeedSummary()
    faults = Faults(seed=seed_value)
    api_keys = {api_key}
    app = build_app(state, api_keys, faults, enforce_limits=enforce_limits)
    sandbox = SandboxApp.build(
        "jiandaoyun",
        app,
        credentials={"api_key": api_key, "app_id": APP_ID},
        description="Jiandaoyun 简道云 open API v5 (CRM app crm_app_0001)",
        error_body=_error_body,
        state=state,
        faults=faults,
    )
    sandbox.extra["api_keys"] = api_keys
    sandbox.extra["seed"] = summary
    return sandbox
