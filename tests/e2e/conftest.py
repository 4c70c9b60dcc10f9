"""The pipeline as real processes: ingest, projector and API on a test's topic and database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.stack.local import Endpoints
from tests.support.processes import (
    ApiProcess,
    IngestProcess,
    ProjectorProcess,
    ingest_on,
    running,
)

JWT_SECRET = "e2e-secret-that-is-long-enough-for-hs256"


@dataclass(frozen=True)
class Pipeline:
    ingest: IngestProcess
    projector: ProjectorProcess
    api: ApiProcess
    topic: str


@pytest.fixture
def pipeline(
    servers: Endpoints, database_url: str, new_topic: str, tmp_path: Path
) -> Iterator[Pipeline]:
    ingest = ingest_on(servers, database_url, new_topic, tmp_path)
    projector = ProjectorProcess(database_url, tmp_path)
    api = ApiProcess(database_url, tmp_path, JWT_SECRET)
    with running(ingest, projector, api):
        yield Pipeline(ingest, projector, api, new_topic)
