"""`python -m deploy`: the dev tooling's command line (see deploy/cli.py)."""

from deploy.cli import app

app(prog_name="python -m deploy")
