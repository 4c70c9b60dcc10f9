"""Archiving a month of the event store to a file, and restoring it.

The event store is never purged: it is the source of truth. A month that has
ended (its partition `events_YYYY_MM`, services/partitions.py) can still leave
the database for a file, and come back whole:

- `archive_month` refuses a month that has not ended, that a projection has not
  wholly projected, or that holds an event held in quarantine. It copies the
  partition in PostgreSQL's binary COPY format, gzipped, to
  `DIR/events_YYYY_MM.copy.gz`, records the file and its SHA-256 in
  `event_archives`, then detaches and drops the partition, in one transaction
  that starts after the copy is written (no long transaction holds back the
  projector's high-water mark).
- The month's (source, id) keys stay in `event_keys`: a copy of an archived event
  is still a duplicate, another payload under its id still a conflict.
- The read models hold what the month's events counted: they do not change.
  What could need its events again: re-settling a window the month reaches
  into, a correction of one of its events, or an event one of its corrections
  corrects. So the projector holds every event that reaches back to the latest
  time the month's events are counted at (`reaches_until`) in quarantine
  (projector sql/batch.sql, hold_reaching_archives), and a rebuild refuses to
  run while a month is out.
- `restore_month` checks the file against its SHA-256, copies it into a new
  table, checks it holds the events and keys that were archived, attaches it as
  the month's partition again and replays the events held for it. Nothing is
  projected twice: the restored events are behind every projection's checkpoint,
  where they were.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from services.infra.database import Connection
from services.partitions import Month, months
from services.projector import quarantine

HELD_FOR_ARCHIVE = "MA001"
"""The SQLSTATE-like code the projector parks an event with when it reaches an archived month."""

CHUNK = 1 << 20

# $1, $2: the month's range of recorded_at, which picks its partition.
BEHIND = """
SELECT string_agg(c.projection, ', ' ORDER BY c.projection) FROM projection_checkpoints c
WHERE EXISTS (SELECT 1 FROM events e
              WHERE e.recorded_at >= $1 AND e.recorded_at < $2
                AND (e.transaction_id, e.position) > (c.transaction_id, c.position))
"""

NO_PROJECTION = "SELECT NOT EXISTS (SELECT 1 FROM projection_checkpoints)"

HELD_IN_MONTH = """
SELECT count(*) FROM projector_quarantine q JOIN events e USING (position)
WHERE q.released_at IS NULL AND e.recorded_at >= $1 AND e.recorded_at < $2
"""

SUMMARY = """
SELECT count(*) AS events, min(position) AS first_position, max(position) AS last_position,
       max(greatest(time, (data->>'corrects_time')::timestamptz,
                    (data->>'purchased_at')::timestamptz)) AS reaches_until
FROM events WHERE recorded_at >= $1 AND recorded_at < $2
"""

STAGING = "events_restoring"
"""The table a restored month is copied into, checked, then attached as its partition."""

STAGED = """
SELECT count(*) AS events, min(position) AS first_position, max(position) AS last_position,
       count(*) FILTER (WHERE recorded_at < $1 OR recorded_at >= $2) AS outside,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM event_keys k
           WHERE k.source = s.source AND k.id = s.id AND k.position = s.position)) AS unknown
FROM events_restoring s
"""

RECORD = """
INSERT INTO event_archives (month, events, first_position, last_position, reaches_until,
                            file, file_sha256)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (month) DO UPDATE
SET events = excluded.events, first_position = excluded.first_position,
    last_position = excluded.last_position, reaches_until = excluded.reaches_until,
    file = excluded.file, file_sha256 = excluded.file_sha256, archived_at = now(),
    restored_at = NULL
"""

READ = "SELECT * FROM event_archives WHERE month = $1"

LIST = "SELECT * FROM event_archives ORDER BY month"

HELD_FOR_ARCHIVES = """
SELECT position FROM projector_quarantine
WHERE released_at IS NULL AND sqlstate = $1 ORDER BY position
"""


class ArchiveRefused(Exception):
    """The month cannot be archived or restored now; the message says why."""


@dataclass(frozen=True)
class Archive:
    """A month out of the store (or put back: `restored_at`)."""

    month: str
    events: int
    first_position: int | None
    last_position: int | None
    reaches_until: datetime | None
    file: str
    file_sha256: str
    archived_at: datetime
    restored_at: datetime | None


@dataclass(frozen=True)
class Restored:
    archive: Archive
    replayed: int
    """Events held for the archive that were projected once it was back."""
    still_held: int


async def archives(connection: Connection) -> list[Archive]:
    """Every month ever archived, with whether it is back."""
    return [Archive(**dict(row)) for row in await connection.fetch(LIST)]


async def archive_month(connection: Connection, month: Month, directory: Path) -> Archive:
    """Copy `month`'s events to a file in `directory`, record it, and take the month out."""
    if month not in await months(connection):
        raise ArchiveRefused(f"the event store has no month {month} to archive")
    if month >= Month.of(await connection.fetchval("SELECT now()")):
        raise ArchiveRefused(f"{month} has not ended: only a past month can be archived")
    await _check_projected(connection, month)
    summary = await _one(connection, SUMMARY, month.start, month.end)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    path = directory / f"{month.table}.copy.gz"
    digest = await _copy_out(connection, month, path)
    async with connection.transaction():
        # The month takes no new rows (it has ended), but check the file is all of it.
        await connection.execute(f"LOCK TABLE {month.table} IN SHARE MODE")
        if await _one(connection, SUMMARY, month.start, month.end) != summary:
            raise ArchiveRefused(f"{month} changed while it was copied; archive it again")
        await _check_projected(connection, month)
        await connection.execute(
            RECORD,
            str(month),
            summary["events"],
            summary["first_position"],
            summary["last_position"],
            summary["reaches_until"],
            str(path.resolve()),
            digest,
        )
        await connection.execute(f"ALTER TABLE events DETACH PARTITION {month.table}")
        await connection.execute(f"DROP TABLE {month.table}")
    return Archive(**dict(await _one(connection, READ, str(month))))


async def restore_month(connection: Connection, month: Month, file: Path | None = None) -> Restored:
    """Put an archived month back from its file (or `file`), then replay what waited for it."""
    row = await connection.fetchrow(READ, str(month))
    if row is None or row["restored_at"] is not None:
        raise ArchiveRefused(f"{month} is not archived")
    path = file or Path(row["file"])
    if not path.exists():
        raise ArchiveRefused(f"{path} does not exist: give the archive's file with --file")
    if (digest := await asyncio.to_thread(_sha256, path)) != row["file_sha256"]:
        raise ArchiveRefused(f"{path} is not the archive of {month}: its SHA-256 is {digest}")
    async with connection.transaction():
        await connection.execute(f"CREATE TABLE {STAGING} (LIKE events)")
        await connection.copy_to_table(STAGING, source=_read_gzip(path), format="binary")
        found = await _one(connection, STAGED, month.start, month.end)
        counted = (found["events"], found["first_position"], found["last_position"])
        if counted != (row["events"], row["first_position"], row["last_position"]):
            raise ArchiveRefused(f"{path} does not hold the {row['events']} events archived")
        if found["outside"] or found["unknown"]:
            raise ArchiveRefused(
                f"{path} holds {found['outside']} events of another month and"
                f" {found['unknown']} whose keys the store does not know"
            )
        await connection.execute(f"ALTER TABLE {STAGING} RENAME TO {month.table}")
        await connection.execute(
            f"ALTER TABLE events ATTACH PARTITION {month.table}"
            f" FOR VALUES FROM ('{month.start.isoformat()}') TO ('{month.end.isoformat()}')"
        )
        await connection.execute(
            "UPDATE event_archives SET restored_at = now() WHERE month = $1", str(month)
        )
    replayed, still_held = await _replay_held(connection)
    restored = Archive(**dict(await _one(connection, READ, str(month))))
    return Restored(restored, replayed, still_held)


async def _one(connection: Connection, query: str, *args: object) -> asyncpg.Record:
    row = await connection.fetchrow(query, *args)
    if row is None:
        raise AssertionError(f"no row from {query}")
    return row


async def _check_projected(connection: Connection, month: Month) -> None:
    if await connection.fetchval(NO_PROJECTION):
        raise ArchiveRefused("no projection has run: archive a month once it is projected")
    behind = await connection.fetchval(BEHIND, month.start, month.end)
    if behind:
        raise ArchiveRefused(f"{month} is not wholly projected by {behind}: try again later")
    if held := await connection.fetchval(HELD_IN_MONTH, month.start, month.end):
        raise ArchiveRefused(
            f"{month} holds {held} events held in quarantine: replay or drop them first"
        )


async def _replay_held(connection: Connection) -> tuple[int, int]:
    """Replay every event held for an archive; how many went in, how many still wait."""
    replayed = still = 0
    for row in await connection.fetch(HELD_FOR_ARCHIVES, HELD_FOR_ARCHIVE):
        try:
            await quarantine.replay(connection, row["position"])
            replayed += 1
        except quarantine.StillArchived:
            still += 1
    return replayed, still


async def _copy_out(connection: Connection, month: Month, path: Path) -> str:
    """Write the partition to `path` (gzipped binary COPY), durably; the file's SHA-256."""
    partial = path.with_suffix(".partial")
    with gzip.open(partial, "wb") as out:

        async def write(chunk: bytes) -> None:
            out.write(chunk)

        await connection.copy_from_table(month.table, output=write, format="binary")
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    partial.replace(path)
    return await asyncio.to_thread(_sha256, path)


async def _read_gzip(path: Path) -> AsyncIterator[bytes]:
    with gzip.open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
