"""The `metering` command: one entry point for the services and the local stack."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from services.infra.settings import ConnectionSettings

app = typer.Typer(help="Credit metering service.", no_args_is_help=True)
stack_app = typer.Typer(help="Local PostgreSQL and Kafka, without Docker.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
ingest_app = typer.Typer(help="Kafka -> validated, deduplicated event store.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
console = Console()


@stack_app.command("up")
def stack_up() -> None:
    """Start PostgreSQL and Kafka (idempotent) and apply the migrations."""
    from deploy.stack.local import LocalStack
    from services.infra.migrations.runner import migrate

    started = time.monotonic()
    stack = LocalStack()
    endpoints = stack.up()
    migrate(endpoints.database_url)
    console.print(f"[green]stack up[/green] in {time.monotonic() - started:.1f} s")
    for name, value in endpoints.as_env().items():
        console.print(f"export {name}={value}", soft_wrap=True, highlight=False)


@stack_app.command("down")
def stack_down() -> None:
    """Stop what `stack up` started."""
    from deploy.stack.local import LocalStack

    LocalStack().down()
    console.print("stack down")


@stack_app.command("status")
def stack_status() -> None:
    """Show each server: running, stopped or external (from the environment)."""
    from deploy.stack.local import LocalStack

    table = Table("server", "state", "address")
    for component in LocalStack().status():
        table.add_row(component.name, component.state, component.address)
    console.print(table)


@stack_app.command("env")
def stack_env() -> None:
    """Print the stack's addresses as shell exports (for `eval $(metering stack env)`)."""
    from deploy.stack.local import LocalStack

    for name, value in LocalStack().endpoints().as_env().items():
        print(f"export {name}={value}")


@app.command("migrate")
def migrate_command() -> None:
    """Apply the database migrations to METERING_DATABASE_URL."""
    from services.infra.migrations.runner import current_revision, migrate

    url = ConnectionSettings().database_url
    migrate(url)
    console.print(f"database at revision {current_revision(url)}")


@app.command("run")
def run_command() -> None:
    """Start everything for a local try-out (today: the stack and the schema)."""
    from deploy.stack.local import LocalStack
    from services.infra.migrations.runner import migrate

    started = time.monotonic()
    endpoints = LocalStack().up()
    migrate(endpoints.database_url)
    console.print(f"[green]ready[/green]: stack up in {time.monotonic() - started:.1f} s")
    console.print(f"  PostgreSQL (event store, migrated): {endpoints.database_url}")
    console.print(f"  Kafka: {endpoints.kafka_bootstrap}")
    console.print(
        "[yellow]The ingest, projector and query API services are not built yet, so there "
        "is no demo traffic and no API to query.[/yellow] Stop the stack with "
        "`.venv/bin/metering stack down`."
    )


@ingest_app.command("run")
def ingest_run() -> None:
    """Consume the events topic into the event store until SIGTERM or Ctrl-C."""
    import asyncio
    import logging

    from services.ingest.app import build_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(build_app().run())


if __name__ == "__main__":
    app()
