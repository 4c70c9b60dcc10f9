"""Real servers for the tests: Kafka and PostgreSQL, isolated per test.

Where the servers come from, in order: environment variables naming running
servers (METERING_DATABASE_URL and METERING_KAFKA_BOOTSTRAP); testcontainers,
where a Docker engine answers; else the local stack (`python -m deploy stack up`).
Each test gets its own database (a copy of a migrated template) and its own
topics, so no test sees another's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from deploy.stack.local import DATABASE_URL_ENV, KAFKA_BOOTSTRAP_ENV, Endpoints, LocalStack
from services.infra import database
from services.infra.migrations.runner import migrate
from services.ingest.recorder import prepare_connection as prepare_recorder
from services.projector.projection import prepare_connection
from tests.support.topics import create_topic

TEMPLATE_DATABASE = "metering_test_template"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the real servers, so `-m "not servers"` runs the rest."""
    for item in items:
        if "servers" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.servers)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


def _from_testcontainers(stack: ExitStack) -> Endpoints:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    postgres = stack.enter_context(PostgresContainer("postgres:15", driver=None))
    kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft())
    return Endpoints(
        database_url=postgres.get_connection_url(),
        kafka_bootstrap=kafka.get_bootstrap_server(),
    )


@pytest.fixture(scope="session")
def servers() -> Iterator[Endpoints]:
    """The Kafka broker and PostgreSQL server every integration test talks to."""
    if DATABASE_URL_ENV in os.environ and KAFKA_BOOTSTRAP_ENV in os.environ:
        yield Endpoints(os.environ[DATABASE_URL_ENV], os.environ[KAFKA_BOOTSTRAP_ENV])
        return
    with ExitStack() as stack:
        if _docker_engine_answers():
            yield _from_testcontainers(stack)
            return
        local = LocalStack()
        was_running = all(c.state != "stopped" for c in local.status())
        endpoints = local.up()
        if not was_running and os.environ.get("METERING_KEEP_STACK") != "1":
            stack.callback(local.down)
        yield endpoints


@pytest.fixture(scope="session")
def template_database(servers: Endpoints) -> str:
    """A migrated database that each test's database is copied from."""
    admin_url = _with_database(servers.database_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DATABASE}"')
    migrate(_with_database(servers.database_url, TEMPLATE_DATABASE))
    return TEMPLATE_DATABASE


def _scratch_database(servers: Endpoints, prefix: str, template: str | None) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin_url = _with_database(servers.database_url, "postgres")
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy_of}')
    yield _with_database(servers.database_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(servers: Endpoints, template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own, dropped afterwards."""
    yield from _scratch_database(servers, "test", template_database)


@pytest.fixture
def new_database(servers: Endpoints, template_database: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, migrated databases on demand (several per test); all dropped afterwards."""
    made: list[Iterator[str]] = []

    def make() -> str:
        scratch = _scratch_database(servers, "test", template_database)
        made.append(scratch)
        return next(scratch)

    yield make
    for scratch in made:
        next(scratch, None)


@pytest.fixture
def empty_database_url(servers: Endpoints) -> Iterator[str]:
    """A fresh database with no tables at all, dropped afterwards."""
    yield from _scratch_database(servers, "empty", None)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's database, ready to append batches and project them."""
    connection = await database.connect(database_url)
    await prepare_connection(connection)
    await prepare_recorder(connection)
    yield connection
    await connection.close()


@pytest.fixture
async def new_topic(servers: Endpoints) -> AsyncIterator[str]:
    """A topic of this test's own (4 partitions, LogAppendTime), deleted afterwards."""
    name = f"test.{uuid.uuid4().hex[:12]}"
    await create_topic(servers.kafka_bootstrap, name)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
    await admin.start()
    try:
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()
