"""The local stack: PostgreSQL and Kafka under one project-local folder, no Docker.

Servers named by environment variables (METERING_DATABASE_URL,
METERING_KAFKA_BOOTSTRAP) take precedence: the stack then neither starts nor
stops that part. Ports are picked free on first start and kept in state.json,
so a restarted stack comes back at the same addresses.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.stack.kafka import KafkaBroker
from deploy.stack.postgres import PostgresServer, RunAs
from deploy.stack.processes import free_port, port_is_free

DATABASE_URL_ENV = "METERING_DATABASE_URL"
KAFKA_BOOTSTRAP_ENV = "METERING_KAFKA_BOOTSTRAP"


def default_root() -> Path:
    return Path(os.environ.get("METERING_STACK_DIR", Path.cwd() / ".stack")).resolve()


def _postgres_root(root: Path) -> Path:
    """Where the cluster lives: beside the rest, unless its account cannot get there.

    As root, the server runs as an unprivileged account; a checkout in a private
    folder (under /root, say) is out of its reach, so the cluster moves to a
    folder of its own under the system's temporary directory.
    """
    wanted = root / "postgres"
    if RunAs.for_current_user().unreachable_parent(wanted) is None:
        return wanted
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"metering-postgres-{digest}"


@dataclass(frozen=True)
class Endpoints:
    """Where the stack's servers answer."""

    database_url: str
    kafka_bootstrap: str

    def as_env(self) -> dict[str, str]:
        return {DATABASE_URL_ENV: self.database_url, KAFKA_BOOTSTRAP_ENV: self.kafka_bootstrap}


@dataclass
class Ports:
    postgres: int = field(default_factory=free_port)
    kafka: int = field(default_factory=free_port)
    kafka_controller: int = field(default_factory=free_port)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # "running", "stopped" or "external"
    address: str


class LocalStack:
    """Start, stop and describe the local PostgreSQL and Kafka."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_root()
        self.postgres = PostgresServer(_postgres_root(self.root))
        self.kafka = KafkaBroker(self.root / "kafka")

    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _ports(self) -> Ports:
        try:
            ports = Ports(**json.loads(self._state_file.read_text()))
        except (OSError, ValueError, TypeError):
            ports = Ports()
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps(asdict(ports)))
        return ports

    def up(self) -> Endpoints:
        """Start whatever is not running yet and not provided from outside."""
        ports = self._ports()
        if DATABASE_URL_ENV not in os.environ:
            if self.postgres.running_pid() is None and not port_is_free(ports.postgres):
                ports.postgres = free_port()
            self.postgres.start(ports.postgres)
        if KAFKA_BOOTSTRAP_ENV not in os.environ:
            taken = not (port_is_free(ports.kafka) and port_is_free(ports.kafka_controller))
            if self.kafka.running_pid() is None and taken:
                # The controller's address is part of the formatted storage, so new
                # ports mean a freshly formatted (empty) broker.
                ports.kafka, ports.kafka_controller = free_port(), free_port()
                self.kafka.wipe()
            self.kafka.start(ports.kafka, ports.kafka_controller)
        self._state_file.write_text(json.dumps(asdict(ports)))
        return self.endpoints()

    def down(self) -> None:
        """Stop what this stack started; servers from the environment are left alone."""
        if KAFKA_BOOTSTRAP_ENV not in os.environ:
            self.kafka.stop()
        if DATABASE_URL_ENV not in os.environ:
            self.postgres.stop()

    def endpoints(self) -> Endpoints:
        ports = self._ports()
        return Endpoints(
            database_url=os.environ.get(DATABASE_URL_ENV, self.postgres.url(ports.postgres)),
            kafka_bootstrap=os.environ.get(KAFKA_BOOTSTRAP_ENV, f"127.0.0.1:{ports.kafka}"),
        )

    def status(self) -> list[ComponentStatus]:
        endpoints = self.endpoints()

        def state(env: str, pid: int | None) -> str:
            if env in os.environ:
                return "external"
            return "running" if pid is not None else "stopped"

        return [
            ComponentStatus(
                "postgres",
                state(DATABASE_URL_ENV, self.postgres.running_pid()),
                endpoints.database_url,
            ),
            ComponentStatus(
                "kafka",
                state(KAFKA_BOOTSTRAP_ENV, self.kafka.running_pid()),
                endpoints.kafka_bootstrap,
            ),
        ]
