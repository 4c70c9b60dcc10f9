"""`python -m deploy stack` brings up real servers idempotently and stops only its own."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deploy.stack.kafka import broker_answers
from deploy.stack.local import DATABASE_URL_ENV, KAFKA_BOOTSTRAP_ENV, LocalStack

pytestmark = pytest.mark.servers  # starts servers of its own


@pytest.fixture
def own_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """A second stack in a folder of its own, beside whatever the session uses."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv(KAFKA_BOOTSTRAP_ENV, raising=False)
    # Not under pytest's tmp_path: that is private to root, and PostgreSQL runs as
    # an unprivileged account when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="metering-stack-"))
    os.chmod(root, 0o755)
    stack = LocalStack(root)
    yield stack
    stack.down()
    shutil.rmtree(root, ignore_errors=True)


def test_up_twice_starts_once_and_down_stops_everything(own_stack: LocalStack) -> None:
    first = own_stack.up()
    pids = (own_stack.postgres.running_pid(), own_stack.kafka.running_pid())

    second = own_stack.up()

    assert second == first
    assert (own_stack.postgres.running_pid(), own_stack.kafka.running_pid()) == pids
    assert None not in pids
    with psycopg.connect(first.database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert broker_answers(first.kafka_bootstrap)
    assert [c.state for c in own_stack.status()] == ["running", "running"]

    own_stack.down()

    assert [c.state for c in own_stack.status()] == ["stopped", "stopped"]
    assert not broker_answers(first.kafka_bootstrap, timeout_s=2)


def test_a_stale_pid_file_does_not_stop_the_stack_from_starting(own_stack: LocalStack) -> None:
    own_stack.kafka.root.mkdir(parents=True)
    own_stack.kafka.pid_file.write_text("999999\n")

    endpoints = own_stack.up()

    assert own_stack.kafka.running_pid() not in (None, 999999)
    assert broker_answers(endpoints.kafka_bootstrap)


def test_servers_from_the_environment_are_neither_started_nor_stopped(
    own_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://someone@db.example:5432/metering")
    monkeypatch.setenv(KAFKA_BOOTSTRAP_ENV, "kafka.example:9092")

    endpoints = own_stack.up()
    own_stack.down()

    assert endpoints.database_url == "postgresql://someone@db.example:5432/metering"
    assert endpoints.kafka_bootstrap == "kafka.example:9092"
    assert [c.state for c in own_stack.status()] == ["external", "external"]
    assert own_stack.postgres.running_pid() is None
    assert own_stack.kafka.running_pid() is None
