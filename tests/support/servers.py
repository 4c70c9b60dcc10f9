"""Servers of a test's own, so the test may stop and restart them without disturbing others."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.stack.kafka import KafkaBroker, _pom_digest
from deploy.stack.local import LocalStack
from deploy.stack.postgres import PostgresServer
from deploy.stack.processes import free_port
from services.infra.migrations.runner import migrate


@contextmanager
def own_postgres() -> Iterator[tuple[PostgresServer, int]]:
    """A migrated PostgreSQL server in a temporary folder, and its port; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="metering-pg-"))
    os.chmod(root, 0o755)  # the server may run as another account (see RunAs)
    server, port = PostgresServer(root), free_port()
    try:
        server.start(port)
        migrate(server.url(port))
        yield server, port
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class OwnKafka:
    """A single-node broker of a test's own, restartable on the same ports."""

    broker: KafkaBroker
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.broker.start(self.port, self.controller_port)

    def stop(self) -> None:
        self.broker.stop()


def _share_stack_jars(broker: KafkaBroker) -> None:
    """Point the broker at the local stack's jars when they are current: no Maven run.

    Only a current copy is shared: an outdated one would be refetched by
    `fetch_jars`, into the stack's folder through the link.
    """
    jars = LocalStack().kafka.libs
    stamp = jars / ".pom-digest"
    if stamp.exists() and stamp.read_text() == _pom_digest():
        broker.libs.symlink_to(jars, target_is_directory=True)


@contextmanager
def own_kafka() -> Iterator[OwnKafka]:
    """A started broker in a temporary folder; stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="metering-kafka-"))
    broker = KafkaBroker(root)
    _share_stack_jars(broker)
    kafka = OwnKafka(broker, free_port(), free_port())
    try:
        kafka.start()
        yield kafka
    finally:
        kafka.stop()
        shutil.rmtree(root, ignore_errors=True)
