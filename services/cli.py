"""The `metering` command: one entry point for the services and the local stack."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.infra.settings import ConnectionSettings

app = typer.Typer(help="Credit metering service.", no_args_is_help=True)
stack_app = typer.Typer(help="Local PostgreSQL and Kafka, without Docker.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
ingest_app = typer.Typer(help="Kafka -> validated, deduplicated event store.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
projector_app = typer.Typer(help="Event store -> read models.", no_args_is_help=True)
app.add_typer(projector_app, name="projector")
api_app = typer.Typer(help="REST API over the read models.", no_args_is_help=True)
app.add_typer(api_app, name="api")
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


@ingest_app.command("run")
def ingest_run() -> None:
    """Consume the events topic into the event store until SIGTERM or Ctrl-C."""
    import asyncio
    import logging

    from services.ingest.app import build_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(build_app().run())


@projector_app.command("run")
def projector_run() -> None:
    """Keep the read models up to date until SIGTERM or Ctrl-C."""
    import asyncio
    import logging

    from services.projector.service import run_projector
    from services.projector.settings import ProjectorSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_projector(ConnectionSettings(), ProjectorSettings()))


@projector_app.command("rebuild")
def projector_rebuild(
    projection: Annotated[
        str, typer.Option(help="The projection to rebuild (today there is one: usage).")
    ] = "usage",
    batch_size: Annotated[int, typer.Option(min=1)] = 20_000,
) -> None:
    """Rebuild the read models from position 0 beside the live ones, then swap them in."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from services.projector.projection import PROJECTION
    from services.projector.rebuild import rebuild

    if projection != PROJECTION:
        raise typer.BadParameter(f"unknown projection {projection!r}; known: {PROJECTION}")
    url = ConnectionSettings().database_url
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"rebuilding {projection}", total=None)
        report = asyncio.run(
            rebuild(
                url,
                batch_size=batch_size,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        )
    rate = report.events / report.seconds if report.seconds else 0
    console.print(
        f"rebuilt {projection}: {report.events:,} events in {report.seconds:.1f} s "
        f"({rate:,.0f} events/s), swapped in"
    )


@api_app.command("run")
def api_run(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the REST API and /metrics until SIGTERM or Ctrl-C."""
    import uvicorn

    from services.query_api.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


@app.command("token")
def token_command(
    organization: Annotated[
        str | None, typer.Argument(help="Organization the token may read.")
    ] = None,
    operator: Annotated[bool, typer.Option(help="May read every organization.")] = False,
    hours: Annotated[int, typer.Option(min=1)] = 24,
) -> None:
    """Print a signed development token (HS256, METERING_API_JWT_SECRET)."""
    from services.query_api.auth import sign
    from services.query_api.settings import ApiSettings

    secret = ApiSettings().jwt_secret
    if not secret:
        console.print("[red]set METERING_API_JWT_SECRET first[/red] (the API verifies with it)")
        raise typer.Exit(2)
    if organization is None and not operator:
        raise typer.BadParameter("name an organization, or pass --operator")
    print(sign(organization, secret, operator=operator, ttl_s=hours * 3600))


@app.command("emit")
def emit_command(
    type_name: Annotated[
        str | None,
        typer.Argument(
            metavar="TYPE", help="Event type, e.g. com.metering.module_execution.completed.v2"
        ),
    ] = None,
    data: Annotated[str | None, typer.Option(help="The event's data as a JSON object.")] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            help='JSON lines, each {"type": ..., "data": {...}} with optional "id", "time".'
        ),
    ] = None,
    source: Annotated[
        str, typer.Option(help="CloudEvents source of this producer.")
    ] = "metering-cli",
    event_id: Annotated[
        str | None, typer.Option("--id", help="Event id (default: a new UUID).")
    ] = None,
    binary: Annotated[
        bool, typer.Option(help="Use the binary Kafka binding (ce_* headers).")
    ] = False,
) -> None:
    """Send well-formed CloudEvents to the events topic, keyed by organization."""
    import asyncio
    import json

    from pydantic import ValidationError

    from services.emitter import Emitter
    from services.emitter.client import Mode, build_event

    if (type_name is None) == (file is None):
        raise typer.BadParameter("give either TYPE with --data, or --file")
    try:
        if file is not None:
            lines = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
            events = [
                build_event(line["type"], line["data"], source=source, event_id=line.get("id"))
                for line in lines
            ]
        else:
            assert type_name is not None
            events = [
                build_event(type_name, json.loads(data or "{}"), source=source, event_id=event_id)
            ]
    except (ValidationError, ValueError, KeyError) as error:
        console.print(f"[red]not sent[/red]: {error}")
        raise typer.Exit(2) from None

    settings = ConnectionSettings()

    async def send() -> None:
        mode: Mode = "binary" if binary else "structured"
        async with Emitter(
            settings.kafka_bootstrap, settings.events_topic, source, mode
        ) as emitter:
            await emitter.send_many(events)

    asyncio.run(send())
    for event in events:
        print(f"sent {event.type} {event.id} for {event.subject}")


if __name__ == "__main__":
    app()
