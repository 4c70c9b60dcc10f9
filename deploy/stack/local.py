"""The local stack: PostgreSQL and Kafka under one project-local folder, no Docker.

Servers named by environment variables (METERING_DATABASE_URL,
METERING_KAFKA_BOOTSTRAP) take precedence: the stack then neither starts nor
stops that part. Ports are picked free on first start and kept in state.json,
so a restarted stack comes back at the same addresses; so is the folder of the
PostgreSQL cluster, a private folder with a random name (see `PostgresServer`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from deploy.stack.kafka import KafkaBroker
from deploy.stack.postgres import PostgresServer, RunAs
from deploy.stack.processes import free_port, port_is_free

DATABASE_URL_ENV = "METERING_DATABASE_URL"
KAFKA_BOOTSTRAP_ENV = "METERING_KAFKA_BOOTSTRAP"

log = logging.getLogger(__name__)


def hide_password(url: str) -> str:
    """`url` with its password, if any, replaced by `***` (for display)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def default_root() -> Path:
    return Path(os.environ.get("METERING_STACK_DIR", Path.cwd() / ".stack")).resolve()


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


@dataclass
class State:
    """What state.json remembers: the ports, and the PostgreSQL cluster's folder."""

    ports: Ports
    postgres_dir: str | None = None  # None: not made yet, or made by an older stack

    def to_json(self) -> str:
        # Without a folder yet, the format older versions read (and still running ones).
        folder = {} if self.postgres_dir is None else {"postgres_dir": self.postgres_dir}
        return json.dumps({**asdict(self.ports), **folder})

    @classmethod
    def from_json(cls, text: str) -> State:
        fields = json.loads(text)
        postgres_dir = fields.pop("postgres_dir", None)
        return cls(Ports(**fields), str(postgres_dir) if postgres_dir else None)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # "running", "stopped" or "external"
    address: str


class LocalStack:
    """Start, stop and describe the local PostgreSQL and Kafka."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_root()
        self.kafka = KafkaBroker(self.root / "kafka")

    @property
    def postgres(self) -> PostgresServer:
        """The cluster this stack uses: the one its state names, else an older stack's."""
        postgres_dir = self._state().postgres_dir
        return (
            self._legacy_postgres() if postgres_dir is None else PostgresServer(Path(postgres_dir))
        )

    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _state(self) -> State:
        try:
            state = State.from_json(self._state_file.read_text())
        except (OSError, ValueError, TypeError, AttributeError):
            state = State(Ports())
        self._save(state)
        return state

    def _save(self, state: State) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(state.to_json())

    def _legacy_postgres(self) -> PostgresServer:
        """Where stacks before issue 12 kept their cluster, with `--auth=trust`.

        Still found, so that `env`, `status` and `down` serve a stack started by an
        older version; `up` replaces it (see `_retire_legacy_postgres`).
        """
        inside = self.root / "postgres"
        if RunAs.for_current_user().unreachable_parent(inside) is None:
            return PostgresServer(inside)
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return PostgresServer(Path(tempfile.gettempdir()) / f"metering-postgres-{digest}")

    def _retire_legacy_postgres(self) -> None:
        """Stop an older stack's cluster, and remove it when it lies in the stack folder.

        It trusted every local client, and its folder may be one anybody could have
        made (in /tmp, under a predictable name): its data (demo and test data) is not
        carried over; the new cluster starts empty, with a password.
        """
        legacy = self._legacy_postgres()
        if legacy.running_pid() is not None:
            legacy.stop()
            log.warning(
                "stopped the PostgreSQL of an older stack, which asked for no password; "
                "a new, empty cluster replaces it: export `stack env` again"
            )
        if legacy.root == self.root / "postgres" and legacy.root.is_dir():
            if legacy.root.is_symlink():
                legacy.root.unlink()
            else:
                shutil.rmtree(legacy.root)
            log.warning("removed the PostgreSQL cluster of an older stack: %s", legacy.root)
        elif legacy.root.exists():
            log.warning(
                "an older stack's PostgreSQL folder is left for you to remove: %s", legacy.root
            )

    def _new_postgres_dir(self) -> Path:
        """A new folder for the cluster, with a name no one can know beforehand.

        It goes in the stack folder, unless the server's account (see `RunAs`)
        cannot get there (a checkout under /root, say): then in the system's
        temporary folder.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        if RunAs.for_current_user().unreachable_parent(self.root / "postgres") is None:
            return Path(tempfile.mkdtemp(prefix="postgres-", dir=self.root))
        return Path(tempfile.mkdtemp(prefix="metering-postgres-"))

    def _own_postgres(self, state: State) -> PostgresServer:
        """The stack's cluster; on first start (or once its folder is gone), a new one."""
        if state.postgres_dir is not None and os.path.lexists(state.postgres_dir):
            return PostgresServer(Path(state.postgres_dir))
        if state.postgres_dir is None:
            self._retire_legacy_postgres()
        state.postgres_dir = str(self._new_postgres_dir())
        self._save(state)  # remembered at once: `down` finds it even if `up` fails
        return PostgresServer(Path(state.postgres_dir))

    def up(self) -> Endpoints:
        """Start whatever is not running yet and not provided from outside."""
        state = self._state()
        ports = state.ports
        if DATABASE_URL_ENV not in os.environ:
            postgres = self._own_postgres(state)
            if postgres.running_pid() is None and not port_is_free(ports.postgres):
                ports.postgres = free_port()
            postgres.start(ports.postgres)
        if KAFKA_BOOTSTRAP_ENV not in os.environ:
            taken = not (port_is_free(ports.kafka) and port_is_free(ports.kafka_controller))
            if self.kafka.running_pid() is None and taken:
                # The controller's address is part of the formatted storage, so new
                # ports mean a freshly formatted (empty) broker.
                ports.kafka, ports.kafka_controller = free_port(), free_port()
                self.kafka.wipe()
            self.kafka.start(ports.kafka, ports.kafka_controller)
        self._save(state)
        return self.endpoints()

    def down(self) -> None:
        """Stop what this stack started; servers from the environment are left alone."""
        if KAFKA_BOOTSTRAP_ENV not in os.environ:
            self.kafka.stop()
        if DATABASE_URL_ENV not in os.environ:
            self.postgres.stop()

    def endpoints(self) -> Endpoints:
        ports = self._state().ports
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
                hide_password(endpoints.database_url),
            ),
            ComponentStatus(
                "kafka",
                state(KAFKA_BOOTSTRAP_ENV, self.kafka.running_pid()),
                endpoints.kafka_bootstrap,
            ),
        ]
