"""The `erphub` command line, one module per command group.

    main        assembles the commands into one Typer app; `main()` is the console script
    output      consoles, tables, JSON and the one-line error printing (exit codes live here)
    options     the options every command shares (--config, --json) and opening a Hub
    validate, run, status, dlq, systems, serve, conflicts, sandbox, demo, mapping   the commands

Command modules import `output` and `options`, never each other, and never `main`. The CLI is the
only layer that imports `erphub.flows` (Prefect) and `erphub.sandbox`.
"""
