"""`erphub demo`: the whole product in two minutes on one machine.

Starts the Jiandaoyun and Kingdee sandboxes on 127.0.0.1, runs the customer and sales-order
pipelines through the embedded Prefect flow, runs them again (nothing moves), changes a handful
of CRM records, and runs once more (only those move). The store stays in `.erphub/demo.db`, so
`erphub status --json` and `erphub dlq list` show what happened afterwards.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from erphub import sandbox as sandboxes
from erphub.cli.options import DEFAULT_CONFIG, ConfigOption
from erphub.cli.output import out, results_table, user_errors

DEMO_PIPELINES = ["crm_customers_to_erp", "crm_orders_to_erp"]
CHANGED_CUSTOMERS = 4
CHANGED_ORDERS = 2


def _fresh_store(config_path: str) -> None:
    """The sandboxes start from the same seed every time, so the demo's state does too."""
    from erphub.config.loader import load_config

    url = load_config(config_path).store_url()
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def _change_crm_records(crm_state: Any, console: Console) -> None:
    """What a salesperson does in the CRM between two syncs: edit a few customers and orders."""
    rng = random.Random(11)
    customers = [r for r in crm_state.all("customer_form") if r.get("status") == "正式"]
    for record in rng.sample(customers, CHANGED_CUSTOMERS):
        crm_state.touch("customer_form", [record["_id"]],
                        changes={"phone": f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"})
        console.print(f"  changed phone of customer {record['customer_code']} {record['customer_name']}")
    orders = crm_state.all("sales_order_form")
    for record in rng.sample(orders, CHANGED_ORDERS):
        crm_state.touch("sales_order_form", [record["_id"]], changes={"remark": "客户要求加急发货"})
        console.print(f"  changed remark of order {record['order_no']}")


def _show(console: Console, title: str, results: list[dict[str, Any]]) -> None:
    console.print(results_table(results, title=title))


def run_demo(config_path: str, *, engine: str, console: Console) -> None:
    from erphub.cli.runner import run_pipelines

    _fresh_store(config_path)
    crm = sandboxes.create("jiandaoyun")
    erp = sandboxes.create("kingdee", seed_customers=1)  # one ERP customer the CRM also has: audited, so refused
    with crm.serve() as crm_server, erp.serve() as erp_server:
        os.environ["ERPHUB_DEMO_JDY_URL"] = crm_server.base_url
        os.environ["ERPHUB_DEMO_KD_URL"] = f"{erp_server.base_url}/k3cloud/"
        console.print(f"[bold]Jiandaoyun CRM sandbox[/bold] {crm_server.base_url}   "
                      f"[bold]Kingdee ERP sandbox[/bold] {erp_server.base_url}/k3cloud/")

        def run(title: str) -> None:
            results, _failed = run_pipelines(config_path, DEMO_PIPELINES, run_all=False, since=None, until=None,
                                             full=False, engine=engine, log_format="console", progress=False)
            _show(console, title, results)

        console.rule("1. first sync: everything new moves (a few records are refused and kept as dead letters)")
        run("first run")
        console.rule("2. run again: nothing changed, nothing moves")
        run("second run")
        console.rule("3. a salesperson edits a few CRM records; only those move")
        _change_crm_records(crm.state, console)
        run("third run")
    console.rule("what next")
    console.print("  erphub status --json      per pipeline: last run, counts, cursor (run from this folder)")
    console.print("  erphub dlq list           the records that were refused, and why")
    console.print("  erphub dlq show ID        one dead letter whole")


def demo(
    config: ConfigOption = DEFAULT_CONFIG,
    engine: Annotated[str, typer.Option(help="prefect (default) or plain.")] = "prefect",
) -> None:
    """Start the sandboxes, sync CRM customers and orders into the ERP, run again, change a few, run again."""
    with user_errors():
        run_demo(config, engine=engine, console=out)
