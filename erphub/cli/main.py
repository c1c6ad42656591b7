"""The `erphub` command: every command group assembled into one Typer app.

Exit codes: 0 the work completed (dead letters are counted, not fatal), 1 a run failed,
2 usage or config error (one line naming file, line and field; never a traceback).
"""

from __future__ import annotations

import sys

import typer

from erphub.cli import (
    conflicts,
    conventions,
    demo,
    deploy,
    dlq,
    logs,
    mapping,
    reconcile,
    run,
    sandbox,
    serve,
    status,
    systems,
    validate,
)
from erphub.cli.output import err
from erphub.core.files import private_umask

app = typer.Typer(help="erphub: keep a CRM and the ERP / finance systems behind it in agreement.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command()(validate.validate)
app.command()(run.run)
app.command()(status.status)
app.command()(logs.logs)
app.command()(reconcile.reconcile)
app.add_typer(dlq.dlq_app, name="dlq")
app.add_typer(systems.systems_app, name="systems")
app.command()(serve.serve)
app.command()(deploy.deploy)
app.command()(deploy.worker)
app.add_typer(conflicts.conflicts_app, name="conflicts")
app.command()(sandbox.sandbox)
app.command()(demo.demo)
app.add_typer(mapping.mapping_app, name="mapping", help="Check, test and list mapping transforms.")
app.callback()(conventions.root_options)
conventions.hide_flag_types()


def main() -> None:
    private_umask()  # the store, Prefect's database and logs hold personal data: 0600 files, 0700 folders
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
