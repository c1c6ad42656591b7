"""`python -m erphub.cli ...` is the `erphub` command."""

from erphub.cli.main import main

main()
