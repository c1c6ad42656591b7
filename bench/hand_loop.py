"""The baseline of the no-latency bench: a hand-written single-loop httpx sync doing erphub's job.

    python bench/hand_loop.py JIANDAOYUN_URL KINGDEE_URL

One thread, one loop, no store: read a page of 100 Jiandaoyun customers (data/list, paged by
data_id), map each with the same compiled customer mapping erphub uses (so the mapping's cost is
the same on both sides and the ratio measures the sync machinery), look the page's numbers up in
Kingdee (one ExecuteBillQuery `FNumber in (...)`), and save the page in one BatchSave (existing
numbers as updates by FCUSTID, the others as creates). What it leaves out, and erphub does not: a
store of links and cursors, change detection, dead letters, retries and rate limiting. That is the
price the ratio's target (>= 0.8) allows erphub to pay.

It reads as fast as the sandbox answers; erphub runs with its quotas lifted, the per-endpoint ones
included (`rate_limit: {endpoints: ...}`, bench/common.py), so neither side waits for a limiter.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx
from common import DEMO_CONFIG, DEMO_ENV

from erphub.mappings import Mapped, compile_mapping
from erphub.mappings.lookups import LookupTables

CUSTOMER_YAML = DEMO_CONFIG.parent.parent / "mappings/jiandaoyun_to_kingdee/customer.yaml"
FORM = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService."
AUTH = "Kingdee.BOS.WebApi.ServicesStub.AuthService."


def demo_env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in DEMO_ENV.read_text().splitlines() if "=" in line and line[0] != "#")
    return {k.strip(): v.strip() for k, v in pairs}


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sync(jdy_url: str, kd_url: str, *, acct_id: str = "66b2a4c1e9d30f", username: str = "erphub") -> int:
    """Moves every customer; returns how many Kingdee saved."""
    env = demo_env()
    plan = compile_mapping(CUSTOMER_YAML, tables=LookupTables())
    jdy = httpx.Client(base_url=jdy_url, headers={"Authorization": f"Bearer {env['ERPHUB_DEMO_JDY_API_KEY']}"},
                       timeout=30)
    kd = httpx.Client(base_url=kd_url.rstrip("/") + "/k3cloud/", timeout=30)
    login = kd.post(f"{AUTH}ValidateUser.common.kdsvc",
                    json={"parameters": [acct_id, username, env["ERPHUB_DEMO_KD_PASSWORD"], 2052]}).json()
    kd.cookies.set("kdservice-sessionid", login["KDSVCSessionId"])
    saved, last_id = 0, ""
    while True:
        page = jdy.post("/api/v5/app/entry/data/list", json={
            "app_id": "crm_app_0001", "entry_id": "customer_form", "limit": 100, "data_id": last_id}).json()["data"]
        models: list[dict[str, Any]] = []
        for row in page:
            outcome = plan.apply(row)
            if isinstance(outcome, Mapped):
                model = dict(outcome.data)
                model.setdefault("FCreateOrgId", {"FNumber": "100"})
                model.setdefault("FUseOrgId", {"FNumber": "100"})
                models.append(model)
        if models:
            numbers = ",".join(quote(m["FNumber"]) for m in models)
            rows = kd.post(f"{FORM}ExecuteBillQuery.common.kdsvc", json={"data": {
                "FormId": "BD_Customer", "FieldKeys": "FCUSTID,FNumber", "FilterString": f"FNumber in ({numbers})",
                "OrderString": "FCUSTID ASC", "TopRowCount": 0, "StartRow": 0, "Limit": 2000}}).json()
            existing = {str(number).casefold(): pk for pk, number in rows}
            for model in models:
                if (pk := existing.get(model["FNumber"].casefold())) is not None:
                    model["FCUSTID"] = pk
            answer = kd.post(f"{FORM}BatchSave.common.kdsvc", json={
                "formid": "BD_Customer", "data": {"Model": models, "IsDeleteEntry": False}}).json()
            saved += len(answer["Result"]["ResponseStatus"].get("SuccessEntitys") or [])
        if len(page) < 100:
            return saved
        last_id = page[-1]["_id"]


if __name__ == "__main__":
    print(sync(sys.argv[1], sys.argv[2]), "saved")
