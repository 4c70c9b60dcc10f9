"""A past month of the event store archived to a file and restored: exact throughout.

A billing history spread over four months is stored as if it had arrived as it
happened (each event recorded in the month of its own time) and projected. Its
oldest month is archived: the read models do not move, its ids still deduplicate,
an event reaching back to it waits in quarantine while one of a later month is
projected, and a rebuild refuses to run. Restored from its file, the month is back,
the waiting event is projected, and the read models equal the oracle's and a
rebuild's.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner, Result

from services import partitions
from services.archive import HELD_FOR_ARCHIVE, ArchiveRefused, archive_month, restore_month
from services.cli import app
from services.infra import database
from services.ingest.recorder import prepare_connection as prepare_recorder
from services.partitions import Month
from services.projector import quarantine
from services.projector.projection import prepare_connection
from services.projector.rebuild import MonthsArchived, rebuild
from tests.integration.test_order_independence import check_against_oracle, snapshot
from tests.support.billing_history import billing_history, expected_models
from tests.support.events import module_execution, with_other_credits
from tests.support.projecting import project_everything
from tests.support.store import store

SEPTEMBER = Month(2026, 9)


def tampered_copy(original: Path, copy: Path) -> Path:
    """`original` with its last byte changed."""
    data = original.read_bytes()
    copy.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    return copy


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


async def test_a_month_archived_then_restored_leaves_the_read_models_exact(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    events, periods = billing_history(3)
    url = new_database()
    db = await database.connect(url)
    try:
        await prepare_connection(db)
        await prepare_recorder(db)
        await store(db, events)
        await db.execute("UPDATE events SET recorded_at = time")  # as if stored as it happened
        await partitions.ensure_partitions(db)
        await project_everything(db, 100)
        before = await snapshot(db)
        check_against_oracle(before, expected_models(events, periods))
        in_september = await db.fetchval(
            "SELECT count(*) FROM events WHERE recorded_at < '2026-10-01Z'"
        )
        stored = await db.fetchval("SELECT count(*) FROM events")
        assert in_september > 0

        archived = await archive_month(db, SEPTEMBER, tmp_path)

        assert archived.events == in_september
        assert SEPTEMBER not in await partitions.months(db)
        assert await db.fetchval("SELECT count(*) FROM events") == stored - in_september
        assert await snapshot(db) == before
        with gzip.open(archived.file, "rb") as file:
            assert file.read(11) == b"PGCOPY\n\xff\r\n\x00"

        # Its ids are still known: a copy changes nothing, another payload is a conflict.
        old = next(e for e in events if e.time < SEPTEMBER.end and e.type.endswith("completed.v2"))
        await store(db, [old], first_offset=10_000)
        await store(db, [with_other_credits(old)], first_offset=10_001)
        assert await db.fetchval("SELECT count(*) FROM events") == stored - in_september
        assert await db.fetchval("SELECT reason_code FROM rejected_events") == "conflict"

        # An event reaching back to September waits for it; a November one goes on.
        late = module_execution(
            "org-c", 90_001, Decimal("5.5"), when=datetime(2026, 9, 20, tzinfo=UTC)
        )
        fresh = module_execution(
            "org-c", 90_002, Decimal(2), when=datetime(2026, 11, 15, tzinfo=UTC)
        )
        await store(db, [late, fresh], first_offset=20_000)
        await project_everything(db, 100)
        held = await quarantine.held(db)
        assert [(p.id, p.sqlstate) for p in held] == [(late.id, HELD_FOR_ARCHIVE)]
        with pytest.raises(quarantine.StillArchived):
            await quarantine.replay(db, held[0].position)
        with pytest.raises(MonthsArchived):
            await rebuild(url, swap=False)

        tampered = tampered_copy(Path(archived.file), tmp_path / "tampered.copy.gz")
        with pytest.raises(ArchiveRefused, match="SHA-256"):
            await restore_month(db, SEPTEMBER, tampered)

        restored = await restore_month(db, SEPTEMBER)

        assert (restored.replayed, restored.still_held) == (1, 0)
        assert SEPTEMBER in await partitions.months(db)
        assert await db.fetchval("SELECT count(*) FROM events") == stored + 2
        after = await snapshot(db)
        check_against_oracle(after, expected_models([*events, late, fresh], periods))
        report = await rebuild(url, swap=False)
        assert await snapshot(db, report.schema) == after
        with pytest.raises(ArchiveRefused, match="not archived"):
            await restore_month(db, SEPTEMBER)
    finally:
        await db.close()


async def test_a_month_that_has_not_ended_or_is_not_wholly_projected_stays(
    db: asyncpg.Connection, tmp_path: Path
) -> None:
    await store(db, [module_execution("org-1", 1, Decimal(1))])
    with pytest.raises(ArchiveRefused, match="has not ended"):
        await archive_month(db, Month.of(datetime.now(UTC)), tmp_path)
    await db.execute("UPDATE events SET recorded_at = '2026-01-10Z'")
    await partitions.ensure_partitions(db)
    with pytest.raises(ArchiveRefused, match="no projection has run"):
        await archive_month(db, Month(2026, 1), tmp_path)
    await project_everything(db, 100)
    await store(db, [module_execution("org-1", 2, Decimal(1))], 1)
    await db.execute("UPDATE events SET recorded_at = '2026-01-11Z' WHERE id = 'evt-2'")
    with pytest.raises(ArchiveRefused, match="not wholly projected by usage"):
        await archive_month(db, Month(2026, 1), tmp_path)
    with pytest.raises(ArchiveRefused, match="no month 2025-01"):
        await archive_month(db, Month(2025, 1), tmp_path)
    assert Month(2026, 1) in await partitions.months(db)
    assert files_in(tmp_path) == []


async def test_the_archive_commands_move_a_month_out_and_back(
    db: asyncpg.Connection, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERING_DATABASE_URL", database_url)
    await store(db, [module_execution("org-1", n, Decimal(1)) for n in range(3)])
    await db.execute("UPDATE events SET recorded_at = '2026-02-10Z'")
    await partitions.ensure_partitions(db)
    await project_everything(db, 100)

    def cli(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})

    refused = await asyncio.to_thread(cli, "archive", "month", "2026-13", "--to", str(tmp_path))
    assert refused.exit_code == 2
    assert "is no month" in refused.output
    moved = await asyncio.to_thread(cli, "archive", "month", "2026-02", "--to", str(tmp_path))
    assert moved.exit_code == 0, moved.output
    assert "archived 2026-02: 3 events" in moved.output
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    listed = await asyncio.to_thread(cli, "archive", "list")
    assert "2026-02" in listed.output
    assert "events_2026_02.copy.gz" in listed.output

    tampered = tampered_copy(tmp_path / "events_2026_02.copy.gz", tmp_path / "other.copy.gz")
    wrong = await asyncio.to_thread(cli, "archive", "restore", "2026-02", "--file", str(tampered))
    assert wrong.exit_code == 2
    assert "SHA-256" in wrong.output
    back = await asyncio.to_thread(cli, "archive", "restore", "2026-02")
    assert back.exit_code == 0, back.output
    assert "restored 2026-02: 3 events" in back.output
    assert await db.fetchval("SELECT count(*) FROM events") == 3
