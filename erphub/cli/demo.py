"""`erphub demo`: the whole product in two minutes on one machine.

Starts the Jiandaoyun and Kingdee sandboxes on 127.0.0.1, runs the customer and sales-order
pipelines through the embedded Prefect flow, runs them again (nothing moves), changes a handful
of CRM records, and runs once more (only those move). The store stays in `.erphub/demo/demo.db`, so
`erphub status --json` and `erphub dlq list` show what happened afterwards.

Sealed: the demo runs only the config packaged with erphub (never `--config` or `ERPHUB_CONFIG`: the
runbook has on-call export that one for a real deployment), against its own sandboxes on free ports,
with its state in its own folder, and it deletes only a store it made itself (a marker file says so).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from erphub import sandbox as sandboxes
from erphub.cli.output import fail, out, results_table, user_errors
from erphub.core.errors import ConfigError
from erphub.core.files import private_dir

DEMO_PIPELINES = ["crm_customers_to_erp", "crm_orders_to_erp"]
CHANGED_CUSTOMERS = 4
CHANGED_ORDERS = 2


MARKER = ".made-by-erphub-demo"  # in the demo's state folder: the store there is the demo's to delete


def _fresh_store(config_path: Path) -> None:
    """The sandboxes start from the same seed every time, so the demo's state does too.

    Only a store the demo made goes: one in a state folder without the demo's marker was put there
    by someone else, and the demo stops rather than delete it.
    """
    from erphub.config.loader import load_config

    loaded = load_config(config_path)
    url = loaded.store_url()
    if not url.startswith("sqlite:///"):
        raise ConfigError("the demo keeps its store in SQLite", **loaded.place("store", "url"))
    db = Path(url[len("sqlite:///"):])
    marker = loaded.state_dir / MARKER
    existing = [Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm") if Path(f"{db}{suffix}").exists()]
    if existing and not marker.is_file():
        raise ConfigError(f"{db} exists and the demo did not make it; the demo deletes only its own store: "
                          "move that file away or run the demo from another folder", field="store")
    for path in existing:
        path.unlink()
    private_dir(loaded.state_dir)
    marker.write_text("erphub demo: the store in this folder is the demo's and is reset on every demo run\n",
                      encoding="utf-8")


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


def run_demo(*, engine: str, console: Console) -> None:
    from erphub.cli.runner import run_pipelines
    from erphub.config.loader import PACKAGED_DEMO

    config_path = PACKAGED_DEMO  # the demo's own config, whatever --config or ERPHUB_CONFIG say

    _fresh_store(config_path)
    crm = sandboxes.create("jiandaoyun")
    erp = sandboxes.create("kingdee", seed_customers=1)  # one ERP customer the CRM also has: audited, so refused
    with crm.serve() as crm_server, erp.serve() as erp_server:
        os.environ["ERPHUB_DEMO_JDY_URL"] = crm_server.base_url
        os.environ["ERPHUB_DEMO_KD_URL"] = f"{erp_server.base_url}/k3cloud/"
        console.print(f"[bold]Jiandaoyun CRM sandbox[/bold] {crm_server.base_url}   "
                      f"[bold]Kingdee ERP sandbox[/bold] {erp_server.base_url}/k3cloud/")

        def run(title: str) -> None:
            results, _failed = run_pipelines(str(config_path), DEMO_PIPELINES, run_all=False, since=None, until=None,
                                             full=False, engine=engine, log_format="console", progress=False)
            _show(console, title, results)

        console.rule("1. first sync: everything new moves (a few records are refused and kept as dead letters)")
        run("first run")
        console.rule("2. run again: nothing changed, nothing moves")
        run("second run")
        console.rule("3. a salesperson edits a few CRM records; only those move")
        _change_crm_records(crm.state, console)
        run("third run")
    console.rule("what next (from this folder)")
    demo_config = f"--config {config_path}"
    console.print(f"  erphub status --json {demo_config}      per pipeline: last run, counts, cursor", soft_wrap=True)
    console.print(f"  erphub dlq list {demo_config}           the records that were refused, and why", soft_wrap=True)
    console.print(f"  erphub dlq show ID {demo_config}        one dead letter whole", soft_wrap=True)


def demo(
    engine: Annotated[str, typer.Option(help="prefect (default) or plain.")] = "prefect",
    config: Annotated[str | None, typer.Option("--config", "-c", hidden=True,
                                               help="Refused: the demo runs only its own config.")] = None,
) -> None:
    """Start the sandboxes, sync CRM customers and orders into the ERP, run again, change a few, run again.

    Uses only the demo config packaged with erphub (never --config or ERPHUB_CONFIG) and keeps its
    state in ./.erphub/demo/."""
    if config is not None:
        raise fail("error: --config: erphub demo runs only its own packaged config and sandboxes; "
                   "to run a deployment use `erphub run --config FILE`", 2)
    if engine not in ("prefect", "plain"):
        raise fail("error: --engine must be prefect or plain", 2)
    with user_errors():
        run_demo(engine=engine, console=out)
