"""Rebuilding the read models from position 0, beside the live ones, then swapping.

The new tables are built in a schema of their own while the live projector and
the API go on using the old ones. The swap is one short transaction: it waits
for the live projector's current batch (the batch lock), applies what arrived
meanwhile, and moves the old tables out and the new ones in. Readers wait for
that transaction at most; they never see a half-built model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from services.projector.projection import (
    BATCH_LOCK,
    PROJECTION,
    READ_MODELS,
    prepare_connection,
    project_batch,
)


@dataclass(frozen=True)
class RebuildReport:
    events: int
    seconds: float
    schema: str
    swapped: bool


async def rebuild(
    database_url: str,
    *,
    batch_size: int = 20_000,
    swap: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Project every event into fresh tables; with `swap`, make them the live ones.

    `progress(done, total)` is called after each batch. Without `swap`, the new
    tables stay in the returned schema (for comparing them with the live ones).
    """
    started = time.perf_counter()
    schema = f"rebuild_{time.time_ns()}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        for table in (*READ_MODELS, "projection_checkpoints"):
            await connection.execute(
                f'CREATE TABLE "{schema}".{table} (LIKE public.{table} INCLUDING ALL)'
            )
        await connection.execute(f'SET search_path = "{schema}", public')
        await prepare_connection(connection)
        total = int(await connection.fetchval("SELECT count(*) FROM public.events"))
        done = 0
        while (batch := await project_batch(connection, batch_size)) is not None:
            done += batch.events
            if progress is not None:
                progress(done, max(total, done))
        if swap:
            done += await _swap(connection, schema)
    finally:
        await connection.close()
    return RebuildReport(done, time.perf_counter() - started, schema, swap)


async def _swap(connection: asyncpg.Connection, schema: str) -> int:
    retired = schema.replace("rebuild_", "retired_")
    caught_up = 0
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", BATCH_LOCK)
        while (batch := await project_batch(connection, 50_000)) is not None:
            caught_up += batch.events
        await connection.execute(f'CREATE SCHEMA "{retired}"')
        for table in READ_MODELS:
            await connection.execute(f'ALTER TABLE public.{table} SET SCHEMA "{retired}"')
            await connection.execute(f'ALTER TABLE "{schema}".{table} SET SCHEMA public')
        await connection.execute(
            "INSERT INTO public.projection_checkpoints AS c (projection, transaction_id, position)"
            f' SELECT projection, transaction_id, position FROM "{schema}".projection_checkpoints'
            " WHERE projection = $1"
            " ON CONFLICT (projection) DO UPDATE SET transaction_id = excluded.transaction_id,"
            " position = excluded.position, updated_at = now()",
            PROJECTION,
        )
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await connection.execute(f'DROP SCHEMA "{retired}" CASCADE')
    return caught_up
