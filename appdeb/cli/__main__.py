"""`python -m appdeb.cli`: the same command line as the `appdeb` script."""

from appdeb.cli.main import run_cli

run_cli()
