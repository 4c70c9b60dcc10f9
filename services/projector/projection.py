"""The usage projection: one batch of events into every read model, set-based.

Each statement in `statements/` updates one read model from the whole batch
(one statement per model per batch, never one per event); they run in file
order inside one transaction that also moves the projection's checkpoint, so
a crash leaves the read models exactly at a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from services.infra.database import Connection
from services.projector.tailing import Tracking, load_batch

PROJECTION = "usage"

READ_MODELS = (
    "organizations", "billing_periods", "organization_daily_usage", "scenario_usage",
    "scenario_period_usage", "scenario_daily_usage", "scenario_module_period_usage",
    "runs", "run_modules", "module_executions",
)  # fmt: skip
"""The tables this projection owns: dropped and rebuilt together."""

BATCH_LOCK = 0x6D657465
"""Transaction-level advisory lock held by each batch; a rebuild's swap waits on it."""

TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS projector_batch (
    position bigint PRIMARY KEY, transaction_id bigint NOT NULL, source text NOT NULL,
    id text NOT NULL, type text NOT NULL, organization_id text NOT NULL,
    time timestamptz NOT NULL, data jsonb NOT NULL, recorded_at timestamptz NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS batch_usage (
    position bigint, source text, id text, organization_id text, scenario_id text,
    run_id text, module_id text, app text, action text, status text,
    credits_used numeric, extra_credits numeric, operations bigint,
    counted_at timestamptz, started_at timestamptz, finished_at timestamptz,
    is_execution boolean, day date, period_start timestamptz, period_end timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS batch_auto_purchase (
    organization_id text, period_start timestamptz, enabled boolean, threshold numeric,
    pack numeric, remaining numeric
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS batch_new_runs (
    organization_id text, run_id text, scenario_id text, first_event_at timestamptz
) ON COMMIT DELETE ROWS;
"""


@cache
def statements() -> tuple[str, ...]:
    """The projection's SQL, statement by statement, in file order."""
    folder = files("services.projector") / "statements"
    sql_files = sorted(
        (f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
    )
    return tuple(s for f in sql_files for s in _split(f.read_text()))


@cache
def auto_purchase_statements() -> tuple[str, ...]:
    """Auto-purchase decisions: live projector only, never in a rebuild."""
    return _split((files("services.projector") / "auto_purchase.sql").read_text())


def _split(sql: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in sql.split(";\n") if s.strip() and not _only_comments(s))


def _only_comments(sql: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in sql.splitlines())


@dataclass(frozen=True)
class BatchResult:
    events: int
    tracking: Tracking
    ages_s: list[tuple[float, float]]
    """For each event, seconds from its own time and from its arrival in the store to now."""


async def prepare_connection(connection: Connection) -> None:
    await connection.execute(TEMP_TABLES)


async def read_tracking(connection: Connection, projection: str = PROJECTION) -> Tracking:
    row = await connection.fetchrow(
        "SELECT transaction_id::text::bigint AS transaction_id, position"
        " FROM projection_checkpoints WHERE projection = $1",
        projection,
    )
    return Tracking(row["transaction_id"], row["position"]) if row else Tracking.start()


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
        after = await read_tracking(connection, projection)
        end = await load_batch(connection, after, limit)
        if end is None:
            return None
        for statement in statements():
            await connection.execute(statement)
        if auto_purchase:
            for statement in auto_purchase_statements():
                await connection.execute(statement)
        await connection.execute(
            "INSERT INTO projection_checkpoints (projection, transaction_id, position)"
            " VALUES ($1, $2::text::xid8, $3)"
            " ON CONFLICT (projection) DO UPDATE SET transaction_id = excluded.transaction_id,"
            " position = excluded.position, updated_at = now()",
            projection,
            str(end.transaction_id),
            end.position,
        )
        ages = await connection.fetch(
            "SELECT extract(epoch FROM clock_timestamp() - time)::float8,"
            " extract(epoch FROM clock_timestamp() - recorded_at)::float8 FROM projector_batch"
        )
    return BatchResult(len(ages), end, [(row[0], row[1]) for row in ages])
