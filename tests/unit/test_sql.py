"""The SQL is named, read once, and speaks of the event types the catalog defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas import FAMILIES
from services.infra import sql
from services.projector.projection import (
    DEFINITIONS,
    READ_MODEL_TOTALS,
    READ_MODELS,
    queries,
)

SERVICES = Path(__file__).resolve().parents[2] / "services"
TYPE_PATTERN = re.compile(r"'(com\.metering\.[a-z_.]+?)\.?%'")


def test_named_queries_keep_file_order_and_drop_the_final_semicolon() -> None:
    text = "-- a file comment\n\n-- first --\n-- why\nSELECT 1;\n\n-- second --\nSELECT $1;\n"

    assert sql.parse(text) == {"first": "-- why\nSELECT 1", "second": "SELECT $1"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- twice --\nSELECT 1;\n-- twice --\nSELECT 2;\n", "defined twice"),
        ("-- empty --\n\n-- next --\nSELECT 1;\n", "empty"),
    ],
)
def test_a_name_used_twice_or_without_a_statement_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sql.parse(text)


def test_every_sql_file_of_the_services_is_made_of_named_queries() -> None:
    for path in SERVICES.rglob("*.sql"):
        if "migrations" in path.parts or path.name == "schema.sql":
            continue  # migrations and the schema are whole scripts, not queries
        text = path.read_text()
        named = sql.parse(text)
        body = re.split(r"^-- [a-z][a-z0-9_]* --$", text, maxsplit=1, flags=re.MULTILINE)[0]
        assert named, path
        assert all(line.startswith("--") or not line.strip() for line in body.splitlines()), (
            f"{path}: SQL before the first named query"
        )


def test_every_statement_file_of_the_projector_is_run_by_name() -> None:
    projector = SERVICES / "projector"
    code = "".join(path.read_text() for path in projector.glob("*.py"))
    files = {path.name for path in (projector / "sql").glob("*.sql")}

    assert {name for name in files if f'"{name}"' not in code} == set()
    assert DEFINITIONS[0].startswith("01_")
    assert READ_MODEL_TOTALS[-1] == "cleanup.sql"
    auto_purchase = list(queries("auto_purchase.sql"))
    assert (auto_purchase[0], auto_purchase[-1]) == ("clear_candidates", "fire")


def test_the_rebuild_creates_and_swaps_exactly_the_read_models() -> None:
    rebuild = queries("rebuild.sql")
    created = set(re.findall(r"projection_rebuild\.(\w+) \(LIKE", rebuild["create_tables_beside"]))
    moved_out = set(re.findall(r"ALTER TABLE public\.(\w+) SET SCHEMA", rebuild["swap_tables"]))
    moved_in = set(re.findall(r"projection_rebuild\.(\w+) SET SCHEMA", rebuild["swap_tables"]))

    assert created == {*READ_MODELS, "projection_checkpoints", "projector_quarantine"}
    assert moved_out == moved_in == set(READ_MODELS)
    # The rebuild's checkpoint and quarantine are copied into the live ones at the swap.
    assert "projection_rebuild.projector_quarantine" in rebuild["quarantine_from_rebuild"]


def sql_type_patterns() -> dict[str, set[Path]]:
    """Every event type pattern the services' SQL uses (`'com.metering....%'`), with its files."""
    found: dict[str, set[Path]] = {}
    for path in [*SERVICES.rglob("*.sql"), *SERVICES.rglob("*.py")]:
        for pattern in TYPE_PATTERN.findall(path.read_text()):
            found.setdefault(pattern, set()).add(path)
    return found


def test_every_event_type_the_sql_names_is_in_the_catalog() -> None:
    patterns = sql_type_patterns()
    assert patterns, "the projector's SQL names event types"

    unknown = {
        pattern: files
        for pattern, files in patterns.items()
        if pattern not in FAMILIES and not any(f.startswith(pattern + ".") for f in FAMILIES)
    }
    assert unknown == {}


def test_every_family_of_the_catalog_is_read_by_the_projector() -> None:
    patterns = sql_type_patterns()

    unread = {
        family
        for family in FAMILIES
        if not any(family == p or family.startswith(p + ".") for p in patterns)
    }
    assert unread == set()
