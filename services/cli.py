"""The `metering` command: one entry point for the services.

The local stack and the demo are dev tooling, run from a checkout: `python -m deploy`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from services.infra.settings import ConnectionSettings

if TYPE_CHECKING:
    from schemas import TypedEvent
    from services.emitter.client import Mode
    from services.infra.database import Connection

T = TypeVar("T")

app = typer.Typer(help="Credit metering service.", no_args_is_help=True)
ingest_app = typer.Typer(help="Kafka -> validated, deduplicated event store.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
projector_app = typer.Typer(help="Event store -> read models.", no_args_is_help=True)
app.add_typer(projector_app, name="projector")
api_app = typer.Typer(help="REST API over the read models.", no_args_is_help=True)
app.add_typer(api_app, name="api")
rejected_app = typer.Typer(
    help="Records ingest refused (rejected_events / the dead-letter topic).",
    no_args_is_help=True,
)
app.add_typer(rejected_app, name="rejected")
quarantine_app = typer.Typer(
    help="Events the projection refused, parked while the projector goes on.",
    no_args_is_help=True,
)
app.add_typer(quarantine_app, name="quarantine")
archive_app = typer.Typer(
    help="Months of the event store moved to files, and back (services/archive.py).",
    no_args_is_help=True,
)
app.add_typer(archive_app, name="archive")
webhooks_app = typer.Typer(
    help="Endpoints that receive an organization's notifications, signed (Standard Webhooks).",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")
console = Console()


@app.command("migrate")
def migrate_command() -> None:
    """Apply the database migrations to METERING_DATABASE_URL."""
    from services.infra.migrations.runner import current_revision, migrate

    url = ConnectionSettings().database_url
    migrate(url)
    console.print(f"database at revision {current_revision(url)}")


@ingest_app.command("run")
def ingest_run() -> None:
    """Consume the events topic into the event store until SIGTERM or Ctrl-C."""
    from services.ingest.main import run

    run()


@projector_app.command("run")
def projector_run() -> None:
    """Keep the read models up to date until SIGTERM or Ctrl-C."""
    from services.projector.main import run

    run()


@projector_app.command("rebuild")
def projector_rebuild(
    projection: Annotated[
        str, typer.Option(help="The projection to rebuild (today there is one: usage).")
    ] = "usage",
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Events per batch [default: 250,000, REBUILD_BATCH]."),
    ] = None,
    parallel: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Shards projected side by side, each on its own connection."
        ),
    ] = 2,
) -> None:
    """Rebuild the read models from position 0 beside the live ones, then swap them in."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from services.projector.projection import PROJECTION
    from services.projector.rebuild import REBUILD_BATCH, MonthsArchived, rebuild

    if projection != PROJECTION:
        raise typer.BadParameter(f"unknown projection {projection!r}; known: {PROJECTION}")
    url = ConnectionSettings().database_url
    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"rebuilding {projection}", total=None)
        try:
            report = asyncio.run(
                rebuild(
                    url,
                    batch_size=batch_size or REBUILD_BATCH,
                    parallel=parallel,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            )
        except MonthsArchived as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(2) from None
    rate = report.events / report.seconds if report.seconds else 0
    console.print(
        f"rebuilt {projection}: {report.events:,} events in {report.seconds:.1f} s "
        f"({rate:,.0f} events/s), swapped in"
    )


@projector_app.command("reshard")
def projector_reshard(
    shards: Annotated[int, typer.Argument(min=1, max=256, help="Shards to split it in.")],
    batch_size: Annotated[int, typer.Option(min=1)] = 5000,
) -> None:
    """Split the usage projection in SHARDS shards by organization; stop every projector first.

    Then start the projectors with METERING_PROJECTOR_SHARDS=SHARDS.
    """
    import asyncio

    from services.event_store import LayoutMismatch
    from services.projector.shards import ProjectorRunning, reshard

    url = ConnectionSettings().database_url
    try:
        report = asyncio.run(reshard(url, shards, batch_size=batch_size))
    except (ProjectorRunning, LayoutMismatch) as error:
        console.print(f"[red]not resharded:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(
        f"usage: {report.shards_before} shard(s) -> {report.shards_after}, all from position"
        f" {report.at.position} ({report.caught_up:,} events projected to get there);"
        f" start the projectors with METERING_PROJECTOR_SHARDS={report.shards_after}"
    )


@rejected_app.command("list")
def rejected_list(
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    organization: Annotated[str | None, typer.Option(help="Only this organization.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The newest refused records, with the reason each was refused for."""
    from rich.table import Table

    from services.ingest.rejected import rejected

    rows = _with_database(lambda db: rejected(db, reason, organization, limit))
    table = Table("id", "rejected", "reason", "organization", "event", "why")
    for r in rows:
        table.add_row(
            str(r.rejection_id),
            f"{r.rejected_at:%Y-%m-%d %H:%M}",
            r.reason_code,
            r.organization_id or "",
            f"{r.source or ''} {r.id or ''}",
            r.reason[:200],
        )
    console.print(table if rows else "no refused records")


@rejected_app.command("replay")
def rejected_replay(
    rejection_id: Annotated[int, typer.Argument(help="The record's id (see list).")],
    value_file: Annotated[
        Path | None,
        typer.Option(help="Send this corrected value instead of the stored bytes."),
    ] = None,
) -> None:
    """Send a refused record to the events topic again, as stored or corrected.

    It takes the normal path: validated and deduplicated as always.
    """
    import asyncio
    import dataclasses

    from services.ingest.rejected import NoSuchRejection, send_again, stored_record

    settings = ConnectionSettings()
    try:
        record = _with_database(lambda db: stored_record(db, rejection_id))
    except NoSuchRejection as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    if value_file is not None:
        record = dataclasses.replace(record, value=value_file.read_bytes())
    asyncio.run(send_again(settings.kafka_bootstrap, settings.events_topic, record, rejection_id))
    console.print(f"sent rejected record {rejection_id} to {settings.events_topic} again")


@quarantine_app.command("list")
def quarantine_list(
    everything: Annotated[bool, typer.Option("--all", help="Released ones too.")] = False,
) -> None:
    """The events held in quarantine, with the error each was refused with."""
    from rich.table import Table

    from services.projector import quarantine

    parked = _with_database(lambda db: quarantine.held(db, everything=everything))
    table = Table("position", "organization", "event", "type", "error", "parked", "released")
    for p in parked:
        released = f"{p.released_how} {p.released_at:%Y-%m-%d %H:%M}" if p.released_at else ""
        table.add_row(
            str(p.position),
            p.organization_id,
            f"{p.source} {p.id}",
            p.type,
            f"{p.sqlstate} {p.error}",
            f"{p.quarantined_at:%Y-%m-%d %H:%M}",
            released,
        )
    console.print(table if parked else "nothing held in quarantine")


@quarantine_app.command("replay")
def quarantine_replay(
    position: Annotated[int, typer.Argument(help="The event's position (see list).")],
) -> None:
    """Project a held event again, after the cause is fixed; exact, whatever came since."""
    import asyncpg

    from services.projector import quarantine

    try:
        _with_database(lambda db: quarantine.replay(db, position))
    except (quarantine.NotHeld, quarantine.StillArchived) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    except asyncpg.PostgresError as error:
        console.print(f"[red]still refused[/red] ({error.sqlstate}): {error}; it stays held")
        raise typer.Exit(1) from None
    console.print(f"replayed event {position}: it is in the read models")


@quarantine_app.command("drop")
def quarantine_drop(
    position: Annotated[int, typer.Argument(help="The event's position (see list).")],
    reason: Annotated[str, typer.Option(help="Why it is left out (kept with it).")],
) -> None:
    """Leave a held event out of the read models for good; rebuilds leave it out too."""
    from services.projector import quarantine

    try:
        _with_database(lambda db: quarantine.drop(db, position, reason))
    except quarantine.NotHeld as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"dropped event {position}: {reason}")


@archive_app.command("list")
def archive_list() -> None:
    """The months archived out of the store, and those restored."""
    from rich.table import Table

    from services.archive import archives

    table = Table("month", "events", "positions", "reaches until", "file", "archived", "restored")
    for archive in _with_database(archives):
        table.add_row(
            archive.month,
            f"{archive.events:,}",
            f"{archive.first_position}-{archive.last_position}",
            str(archive.reaches_until),
            archive.file,
            str(archive.archived_at),
            str(archive.restored_at or "-"),
        )
    console.print(table)


@archive_app.command("month")
def archive_month_command(
    month: Annotated[str, typer.Argument(help="The UTC month, YYYY-MM; it must have ended.")],
    to: Annotated[Path, typer.Option(help="The directory the file is written to.")],
) -> None:
    """Move a past, wholly projected month of the event store to a file. Its keys stay, the
    read models do not change; events that reach back to it wait in quarantine for it."""
    from services.archive import ArchiveRefused, archive_month
    from services.partitions import Month

    try:
        archived = _with_database(lambda db: archive_month(db, Month.parse(month), to))
    except (ArchiveRefused, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"archived {archived.month}: {archived.events:,} events to {archived.file}"
        f" (sha256 {archived.file_sha256})"
    )


@archive_app.command("restore")
def archive_restore_command(
    month: Annotated[str, typer.Argument(help="The archived month, YYYY-MM.")],
    file: Annotated[
        Path | None, typer.Option(help="The archive's file, if it moved since.")
    ] = None,
) -> None:
    """Put an archived month back in the store, checked against its SHA-256, and replay
    the events that waited for it."""
    from services.archive import ArchiveRefused, restore_month
    from services.partitions import Month

    try:
        restored = _with_database(lambda db: restore_month(db, Month.parse(month), file))
    except (ArchiveRefused, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"restored {restored.archive.month}: {restored.archive.events:,} events;"
        f" {restored.replayed} held events replayed, {restored.still_held} still wait"
    )


@app.command("purge")
def purge_command() -> None:
    """Purge now what is past its retention (METERING_RETENTION_*): rejected records and
    replayed quarantine records. The services also do it every METERING_RETENTION_INTERVAL_S."""
    from services.retention import PURGES, RetentionSettings, purge_expired

    settings = RetentionSettings()

    async def purge_all(connection: Connection) -> dict[str, int]:
        return {table: await purge_expired(connection, table, settings) for table in PURGES}

    for table, count in _with_database(purge_all).items():
        console.print(f"{table}: {count:,} rows purged")


@webhooks_app.command("add")
def webhooks_add(
    organization: Annotated[str, typer.Argument(help="The organization notified.")],
    url: Annotated[str, typer.Argument(help="Where to POST each notification (http/https).")],
) -> None:
    """Register a webhook; print its id and the secret that signs every delivery to it.

    The secret is shown once: give it to the receiver, which verifies each request
    with any Standard Webhooks library. Notifications decided from now on are delivered.
    """
    from services.projector.webhooks import BadEndpoint, add_endpoint

    try:
        endpoint_id, secret = _with_database(lambda db: add_endpoint(db, organization, url))
    except BadEndpoint as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"webhook {endpoint_id} added for {organization}: {url}")
    print(f"secret: {secret}")


@webhooks_app.command("list")
def webhooks_list(
    organization: Annotated[str | None, typer.Argument(help="Only this organization.")] = None,
) -> None:
    """The webhooks registered (secrets are not shown again)."""
    from rich.table import Table

    from services.projector.webhooks import endpoints

    found = _with_database(lambda db: endpoints(db, organization))
    table = Table("id", "organization", "url", "added")
    for e in found:
        table.add_row(e.endpoint_id, e.organization_id, e.url, f"{e.created_at:%Y-%m-%d %H:%M}")
    console.print(table if found else "no webhooks")


@webhooks_app.command("remove")
def webhooks_remove(
    endpoint_id: Annotated[str, typer.Argument(help="The webhook's id (see list).")],
) -> None:
    """Stop delivering to a webhook; its pending deliveries fail, its log stays."""
    from services.projector.webhooks import BadEndpoint, remove_endpoint

    try:
        _with_database(lambda db: remove_endpoint(db, endpoint_id))
    except BadEndpoint as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"webhook {endpoint_id} removed")


def _with_database(work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run `work` on a connection to METERING_DATABASE_URL."""
    import asyncio

    from services.infra import database

    async def run() -> T:
        connection = await database.connect(ConnectionSettings().database_url)
        try:
            return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(run())


@api_app.command("run")
def api_run(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the REST API until SIGTERM or Ctrl-C; /metrics is on METERING_API_METRICS_PORT."""
    from pydantic import ValidationError

    from services.query_api.main import run
    from services.query_api.settings import ApiSettings

    try:
        settings = ApiSettings()
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "settings"
            console.print(f"[red]METERING_API_ settings: {where}: {problem['msg']}[/red]")
        raise typer.Exit(2) from None
    run(host, port, settings)


@api_app.command("openapi")
def api_openapi(
    output: Annotated[
        Path | None, typer.Option(help="Write the document here instead of stdout.")
    ] = None,
) -> None:
    """The API's OpenAPI document (JSON): every operation, answer, error and example."""
    import json

    from services.query_api.app import create_app
    from services.query_api.settings import ApiSettings

    settings = ApiSettings(jwt_secret="x" * 32)  # the document names no key
    document = json.dumps(create_app(settings=settings).openapi(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(document)
    else:
        output.write_text(document)


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

    settings = ApiSettings()
    secret = settings.jwt_secret
    if not secret:
        console.print("[red]set METERING_API_JWT_SECRET first[/red] (the API verifies with it)")
        raise typer.Exit(2)
    if organization is None and not operator:
        raise typer.BadParameter("name an organization, or pass --operator")
    claim = settings.jwt_organization_claim
    print(sign(organization, secret, operator=operator, ttl_s=hours * 3600, claim=claim))


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

    from pydantic import ValidationError

    if (type_name is None) == (file is None):
        raise typer.BadParameter("give either TYPE with --data, or --file")
    try:
        events = _events_to_emit(type_name, data, file, source, event_id)
    except (ValidationError, ValueError, KeyError) as error:
        console.print(f"[red]not sent[/red]: {error}")
        raise typer.Exit(2) from None
    asyncio.run(_emit(events, source, binary))
    for event in events:
        print(f"sent {event.type} {event.id} for {event.subject}")


def _events_to_emit(
    type_name: str | None, data: str | None, file: Path | None, source: str, event_id: str | None
) -> list[TypedEvent]:
    """The events of `--file`, or the one event of TYPE with `--data`; raises for bad input."""
    import json

    from services.emitter.client import build_event

    if file is not None:
        lines = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        return [
            build_event(line["type"], line["data"], source=source, event_id=line.get("id"))
            for line in lines
        ]
    assert type_name is not None
    return [build_event(type_name, json.loads(data or "{}"), source=source, event_id=event_id)]


async def _emit(events: list[TypedEvent], source: str, binary: bool) -> None:
    from services.emitter import Emitter

    settings = ConnectionSettings()
    mode: Mode = "binary" if binary else "structured"
    async with Emitter(settings.kafka_bootstrap, settings.events_topic, source, mode) as emitter:
        await emitter.send_many(events)


if __name__ == "__main__":
    app()
