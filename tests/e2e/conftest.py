"""The pipeline as real processes: ingest, projector and API on a test's topic and database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.stack.local import Endpoints
from tests.support.processes import ApiProcess, IngestProcess, ProjectorProcess

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
    ingest = IngestProcess(
        database_url,
        servers.kafka_bootstrap,
        new_topic,
        f"{new_topic}.dlq",
        f"ingest-{uuid.uuid4().hex[:8]}",
        tmp_path,
    )
    projector = ProjectorProcess(database_url, tmp_path)
    api = ApiProcess(database_url, tmp_path, JWT_SECRET)
    started = []
    try:
        for process in (ingest, projector, api):
            process.start()
            started.append(process)
        yield Pipeline(ingest, projector, api, new_topic)
    finally:
        for process in reversed(started):
            process.stop()
