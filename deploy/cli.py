"""Dev tooling: `python -m deploy` starts the local stack and the demo, from a checkout.

None of this is installed with the services: the production image runs the
`metering` command (services/cli.py) against servers it is given.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy.stack.local import LocalStack
from services.infra.migrations.runner import migrate

app = typer.Typer(help="Local stack and demo for development (no Docker).", no_args_is_help=True)
stack_app = typer.Typer(help="Local PostgreSQL and Kafka, without Docker.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
console = Console()


@stack_app.command("up")
def stack_up() -> None:
    """Start PostgreSQL and Kafka (idempotent) and apply the migrations."""
    started = time.monotonic()
    endpoints = LocalStack().up()
    migrate(endpoints.database_url)
    console.print(f"[green]stack up[/green] in {time.monotonic() - started:.1f} s")
    for name, value in endpoints.as_env().items():
        console.print(f"export {name}={value}", soft_wrap=True, highlight=False)


@stack_app.command("down")
def stack_down() -> None:
    """Stop what `stack up` started."""
    LocalStack().down()
    console.print("stack down")


@stack_app.command("status")
def stack_status() -> None:
    """Show each server: running, stopped or external (from the environment)."""
    table = Table("server", "state", "address")
    for component in LocalStack().status():
        table.add_row(component.name, component.state, component.address)
    console.print(table)


@stack_app.command("env")
def stack_env() -> None:
    """Print the stack's addresses as shell exports (for `eval $(python -m deploy stack env)`)."""
    for name, value in LocalStack().endpoints().as_env().items():
        print(f"export {name}={value}")


@app.command("run")
def run_command(
    organizations: Annotated[int, typer.Option(min=1)] = 20,
    runs: Annotated[int, typer.Option(min=1, help="Scenario runs to simulate.")] = 1500,
    exit_when_ready: Annotated[
        bool, typer.Option(help="Stop the services once ready (for tests).")
    ] = False,
) -> None:
    """Start the stack and all services, send demo traffic, serve until Ctrl-C."""
    from deploy.demo import run_demo

    run_demo(organizations, runs, exit_when_ready)
