"""A PostgreSQL 15 cluster from the system's binaries, in a project-local folder.

PostgreSQL refuses to run as root, so when the stack runs as root the cluster
belongs to, and runs as, an unprivileged account (`nobody` by default).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.stack.processes import live_pid, port_answers, port_is_free, wait_until

DATABASE = "metering"
SUPERUSER = "postgres"


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres (override: METERING_PG_BINDIR)."""
    override = os.environ.get("METERING_PG_BINDIR")
    candidates = [Path(override)] if override else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bindir in candidates:
        if (bindir / "pg_ctl").exists() and (bindir / "initdb").exists():
            return bindir
    raise FileNotFoundError(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin); "
        "install them with `apt-get install postgresql` or set METERING_PG_BINDIR"
    )


@dataclass(frozen=True)
class RunAs:
    """The account the server runs as; `None` fields mean 'the current user'."""

    uid: int | None
    gid: int | None

    @classmethod
    def for_current_user(cls) -> RunAs:
        if os.geteuid() != 0:
            return cls(None, None)
        name = os.environ.get("METERING_PG_USER", "nobody")
        entry = pwd.getpwnam(name)
        return cls(entry.pw_uid, entry.pw_gid)

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            for item in [path, *path.rglob("*")]:
                os.chown(item, self.uid, self.gid)

    def unreachable_parent(self, path: Path) -> Path | None:
        """The first folder above `path` this account cannot enter, if any."""
        if self.uid is None:
            return None
        for parent in reversed(path.resolve().parents):
            if parent.exists() and not parent.stat().st_mode & 0o001:
                return parent
        return None

    def check_reachable(self, path: Path) -> None:
        """Fail clearly when the account cannot traverse down to `path`."""
        parent = self.unreachable_parent(path)
        if parent is not None:
            raise PermissionError(
                f"PostgreSQL runs as uid {self.uid}, which cannot enter {parent}; "
                "put the stack elsewhere (METERING_STACK_DIR) or chmod o+x that folder"
            )

    def run(self, args: list[str]) -> None:
        """Run a server tool as this account; raise with its output if it fails."""
        result = subprocess.run(
            args,
            check=False,
            user=self.uid,
            group=self.gid,
            extra_groups=[] if self.uid is not None else None,
            capture_output=True,
            text=True,
            cwd="/",
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stdout}{result.stderr}")


@dataclass(frozen=True)
class PostgresServer:
    """One cluster under `root`: data/, run/ (socket), postgres.log."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    def url(self, port: int, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"

    def running_pid(self) -> int | None:
        return live_pid(self.pid_file, "postgres") if self.pid_file.exists() else None

    def start(self, port: int) -> None:
        """Initialise the cluster if needed and start it on `port`; a no-op when running."""
        if self.running_pid() is not None:
            return
        if not port_is_free(port):
            raise OSError(f"port {port} for PostgreSQL is taken by another process")
        bindir = find_bindir()
        run_as = RunAs.for_current_user()
        self.root.mkdir(parents=True, exist_ok=True)
        run_as.check_reachable(self.root)
        (self.root / "run").mkdir(exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self.data.mkdir()
            run_as.own(self.root)
            run_as.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
            self._write_config()
        run_as.own(self.root)
        run_as.run(
            [
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {self.root / 'run'} -c listen_addresses=127.0.0.1",
            ]
        )
        wait_until(lambda: port_answers(port), "PostgreSQL", 30, self.log)
        self._ensure_database(port)

    def stop(self) -> None:
        if self.running_pid() is None:
            return
        RunAs.for_current_user().run(
            [str(find_bindir() / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]
        )

    def _write_config(self) -> None:
        # Sized for a laptop and a 2-core CI machine, not for production.
        settings = {
            "max_connections": "300",
            "shared_buffers": "512MB",
            "work_mem": "16MB",
            "maintenance_work_mem": "256MB",
            "wal_buffers": "16MB",
            "max_wal_size": "4GB",
            "checkpoint_timeout": "15min",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = '{value}'\n")

    def _ensure_database(self, port: int) -> None:
        import psycopg

        with psycopg.connect(self.url(port, "postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
