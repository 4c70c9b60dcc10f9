"""services/infra/schema.sql is the schema the migrations build, whatever its layout."""

from __future__ import annotations

import re
import subprocess
from importlib.resources import files

import psycopg

from services.infra.migrations.runner import migrate


def schema_dump(url: str) -> list[str]:
    """pg_dump's schema of a database, without comments, settings or Alembic's table."""
    dump = subprocess.run(
        [
            "pg_dump",
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=alembic_version",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kept = []
    for line in dump.splitlines():
        if not line.strip() or line.startswith(("--", "\\restrict", "\\unrestrict", "SET ")):
            continue
        if line.startswith("SELECT pg_catalog.set_config"):
            continue
        kept.append(line)
    return kept


def test_schema_sql_is_what_the_migrations_build(
    empty_database_url: str, database_url: str
) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute((files("services.infra") / "schema.sql").read_text().encode())

    from_schema_sql = schema_dump(empty_database_url)
    migrate(database_url)  # already migrated from the template; a no-op, said for clarity
    from_migrations = schema_dump(database_url)

    assert from_schema_sql == from_migrations
    assert any(re.match(r"CREATE TABLE public\.events \(", line) for line in from_migrations)
