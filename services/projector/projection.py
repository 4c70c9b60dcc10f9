"""The usage projection: one batch of events into every read model, set-based.

Each named statement in the numbered files of `sql/` updates one read model
from the whole batch (one statement per model per batch, never one per event);
they run in file order inside one transaction that also moves the projection's
tracking record, so a crash leaves the read models exactly at a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from services import event_store
from services.event_store import Tracking
from services.infra import sql
from services.infra.database import Connection

PROJECTION = "usage"

READ_MODELS = (
    "organizations",
    "billing_periods",
    "organization_daily_usage",
    "scenario_usage",
    "scenario_period_usage",
    "scenario_daily_usage",
    "scenario_module_period_usage",
    "runs",
    "run_modules",
    "module_executions",
)
"""The tables this projection owns: dropped and rebuilt together."""

BATCH_LOCK = 0x6D657465
"""Transaction-level advisory lock held by each batch; a rebuild's swap waits on it."""

SQL_PACKAGE = "services.projector"


def queries(filename: str) -> dict[str, str]:
    """The named queries of one file in `sql/`."""
    return sql.load(SQL_PACKAGE, f"sql/{filename}")


@cache
def read_model_files() -> tuple[str, ...]:
    """The numbered statement files, in the order they run."""
    folder = files(SQL_PACKAGE) / "sql"
    return tuple(sorted(f.name for f in folder.iterdir() if f.name[:2].isdigit()))


@cache
def statements() -> tuple[str, ...]:
    """The projection's SQL, statement by statement, in file order."""
    return tuple(q for name in read_model_files() for q in queries(name).values())


@cache
def auto_purchase_statements() -> tuple[str, ...]:
    """Auto-purchase decisions: live projector only, never in a rebuild."""
    return tuple(queries("auto_purchase.sql").values())


@dataclass(frozen=True)
class BatchResult:
    events: int
    tracking: Tracking
    ages_s: list[tuple[float, float]]
    """For each event, seconds from its own time and from its arrival in the store to now."""


async def prepare_connection(connection: Connection) -> None:
    """Create the batch tables (`sql/batch_tables.sql`) on a connection that projects."""
    for statement in queries("batch_tables.sql").values():
        await connection.execute(statement)


async def load_batch(connection: Connection, after: Tracking, limit: int) -> Tracking | None:
    """Copy the next committed events after `after` into projector_batch, cut it.

    Returns where the batch ends, or None when nothing new is safely visible.
    """
    await event_store.copy_next_batch(connection, after, limit)
    batch = queries("batch.sql")
    await connection.execute(batch["cut_at_second_subscription"])
    row = await connection.fetchrow(batch["batch_end"])
    if row is None:
        return None
    return Tracking(row["transaction_id"], row["position"])


async def project_batch(
    connection: Connection,
    limit: int,
    projection: str = PROJECTION,
    *,
    auto_purchase: bool = False,
) -> BatchResult | None:
    """Apply the next batch and move the checkpoint, atomically; None when caught up.

    With `auto_purchase`, purchases the batch causes are decided in the same
    transaction (into the outbox); a rebuild leaves it off.
    """
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", BATCH_LOCK)
        after = await event_store.read_tracking(connection, projection)
        end = await load_batch(connection, after, limit)
        if end is None:
            return None
        for statement in statements():
            await connection.execute(statement)
        if auto_purchase:
            for statement in auto_purchase_statements():
                await connection.execute(statement)
        await event_store.save_tracking(connection, projection, end)
        ages = await connection.fetch(queries("batch.sql")["batch_ages"])
    return BatchResult(len(ages), end, [(row[0], row[1]) for row in ages])
