"""`erphub reconcile PIPELINE [--repair] [--json]`: do source and target agree on what the pipeline owns?

Exit 0 when they agree (after the repair, with --repair), 1 when drift is left, 2 on bad input.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from erphub.cli.options import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    count_metrics_in_state_dir,
    open_hub,
    setup_logging,
)
from erphub.cli.output import out, print_json, user_errors


def reconcile(
    pipeline: Annotated[str, typer.Argument(help="The pipeline to check.")],
    repair: Annotated[bool, typer.Option("--repair", help="Send missing and different records through the "
                                                          "normal write path, then check again.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Compare what the source says (through the mapping and filter) with what the target holds."""
    from erphub.connectors.base import SupportsFetch
    from erphub.reconcile import reconcile as run_reconcile

    with user_errors(), open_hub(config) as hub:
        setup_logging(loaded=hub.config)
        # As `erphub run`: the drift gauge and the repair's counters go to the shared metrics folder, so
        # `erphub serve`'s /metrics (and a Pushgateway push) has them after this process has ended.
        count_metrics_in_state_dir(hub.config)
        pushing = bool(hub.config.hub.metrics.pushgateway_url)
        hub.config.pipeline(pipeline)  # an unknown name is bad input: exit 2 naming the config
        built = hub.pipeline(pipeline)
        if not isinstance(built.target, SupportsFetch):
            raise hub.config.error(f"reconcile needs a target that can fetch records by id; "
                                   f"{built.target_system!r} cannot", "pipelines", pipeline, "target")
        report = run_reconcile(built, hub.store, repair=repair)
        if pushing:  # a one-shot command ends before a scrape: hand erphub_drift_records to the Pushgateway
            from erphub.cli.runner import push_metrics

            push_metrics(hub.config)
    if as_json:
        print_json(report.as_dict())
    else:
        summary = report.as_dict()
        out.print(f"{pipeline}: compared {report.compared}, missing {summary['missing']}, different "
                  f"{summary['different']}, extra {summary['extra']}, repaired {report.repaired}, "
                  f"left {len(report.left)}", markup=False)
        if report.items:
            table = Table(title="drift")
            for column in ("key", "kind", "fields"):
                table.add_column(column)
            for item in report.items:
                table.add_row(item.key, item.kind, ", ".join(item.fields))
            out.print(table)
    if report.drift:
        raise typer.Exit(1)
