"""Schemathesis against the running API's /openapi.json: no 5xx, every response as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from services.query_api.auth import sign
from tests.support.history import history
from tests.support.processes import ApiProcess
from tests.support.projecting import project_everything
from tests.support.store import store

SECRET = "schemathesis-secret-long-enough-for-hs256!"


@pytest.fixture
def api_schema(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """The API, serving a projected history, as Schemathesis sees it."""
    import asyncio

    async def fill() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            from services.projector.projection import prepare_connection

            await prepare_connection(conn)
            events, _ = history(seed=1, events=500)
            await store(conn, events)
            await project_everything(conn, 1000)
        finally:
            await conn.close()

    asyncio.run(fill())
    api = ApiProcess(database_url, tmp_path, SECRET)
    api.start()
    try:
        yield schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    finally:
        api.stop()


def test_the_api_keeps_its_openapi_contract(api_schema: Any) -> None:
    # Schemathesis' own pytest integration does not work with pytest 9 yet, so the
    # operations are driven with Hypothesis directly.
    headers = {"Authorization": f"Bearer {sign(None, SECRET, operator=True)}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def keeps_contract(case: Any) -> None:
            # Cross-field rules (`to` before `from`, a period that does not exist) cannot be
            # said in OpenAPI, so a schema-valid request may rightly get a documented 422.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        keeps_contract()
