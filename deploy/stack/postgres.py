"""A PostgreSQL 15 cluster from the system's binaries, in a private folder.

PostgreSQL refuses to run as root, so when the stack runs as root the cluster
belongs to, and runs as, an unprivileged account (`nobody` by default).

The folder (`root`) belongs to the current user and no one else may list it:
mode 0700, or 0710 with the server account's group when the server runs as
another account, so that the server can reach its files below. Inside it:
`data/` (the cluster, the server account's, 0700), `run/` (the socket),
`postgres.log`, and `password`: the superuser's generated password (0600, the
current user's), which `url` puts in the address. The server asks every client
for it (`scram-sha-256`, over TCP on 127.0.0.1 and over the socket alike).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from deploy.stack.processes import live_pid, port_answers, port_is_free, wait_until

DATABASE = "metering"
SUPERUSER = "postgres"
AUTH_METHOD = "scram-sha-256"


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
        """Give `path` and everything below it to this account, never through a symlink.

        A symlink is itself re-owned (harmless) but not what it points to, and a
        symlinked folder is not entered: whoever can write below `path` (the
        server's account) must not be able to make root chown a file elsewhere.
        """
        if self.uid is None or self.gid is None:
            return
        os.chown(path, self.uid, self.gid, follow_symlinks=False)
        # fwalk holds each folder open and checks it is the one it listed, so a folder
        # swapped for a symlink while walking is not entered either.
        for _, folders, files, folder_fd in os.fwalk(path, follow_symlinks=False):
            for name in [*folders, *files]:
                os.chown(name, self.uid, self.gid, dir_fd=folder_fd, follow_symlinks=False)

    def create_file(self, path: Path, content: str = "") -> None:
        """Create (or append to) a file of mode 0600 that this account owns; no symlink."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            if self.uid is not None and self.gid is not None:
                os.fchown(fd, self.uid, self.gid)
            os.fchmod(fd, 0o600)
            os.write(fd, content.encode())
        finally:
            os.close(fd)

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


def make_private(folder: Path, run_as: RunAs) -> None:
    """Create `folder`, or check that the current user owns it; then close it to others.

    A folder that exists already must be a real folder of the current user's: one
    someone else made (or a symlink) may hold anything they prepared, so it is
    refused. The server's account gets in through the folder's group (0710).
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    try:  # held open, so what is checked is what gets changed
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        raise PermissionError(f"{folder} is not a folder (a symlink?): refusing to use it") from e
    try:
        owner = os.fstat(fd).st_uid
        if owner != os.geteuid():
            raise PermissionError(
                f"{folder} belongs to uid {owner}, not to the current user "
                f"(uid {os.geteuid()}): someone else may have prepared it, so the local "
                "stack refuses to keep a PostgreSQL cluster there; remove it, or choose "
                "another folder"
            )
        if run_as.gid is None:
            os.fchmod(fd, 0o700)
        else:
            os.fchown(fd, -1, run_as.gid)
            os.fchmod(fd, 0o710)  # the group: the server account, to get in
    finally:
        os.close(fd)


@dataclass(frozen=True)
class PostgresServer:
    """One cluster in the private folder `root` (see the module's docstring)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def pid_file(self) -> Path:
        return self.data / "postmaster.pid"

    def password(self) -> str | None:
        """The superuser's password; `None` before the first start (or for a cluster of an
        older stack, which trusted every local client)."""
        try:
            return self.password_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def url(self, port: int, database: str = DATABASE) -> str:
        password = self.password()
        user = SUPERUSER if password is None else f"{SUPERUSER}:{quote(password, safe='')}"
        return f"postgresql://{user}@127.0.0.1:{port}/{database}"

    def running_pid(self) -> int | None:
        return live_pid(self.pid_file, "postgres") if self.pid_file.exists() else None

    def start(self, port: int) -> None:
        """Initialise the cluster if needed and start it on `port`; a no-op when running.

        A cluster without a password file was made by an older stack with
        `--auth=trust`: it is stopped and made anew (its data is lost).
        """
        run_as = RunAs.for_current_user()
        make_private(self.root, run_as)
        run_as.check_reachable(self.root)
        if self.password() is None and (self.data / "PG_VERSION").exists():
            self.stop()
            shutil.rmtree(self.data)
        if self.running_pid() is not None:
            return
        if not port_is_free(port):
            raise OSError(f"port {port} for PostgreSQL is taken by another process")
        bindir = find_bindir()
        (self.root / "run").mkdir(mode=0o700, exist_ok=True)
        run_as.own(self.root / "run")
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self.data.mkdir(mode=0o700)
            run_as.own(self.data)
            self._initdb(bindir, run_as)
            self._write_config()
        run_as.own(self.data)
        run_as.create_file(self.log)
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

    def _initdb(self, bindir: Path, run_as: RunAs) -> None:
        """A new cluster whose superuser has a generated password, asked of every client."""
        password = self.password()
        if password is None:
            password = secrets.token_urlsafe(24)
            RunAs(None, None).create_file(self.password_file, password + "\n")
        # initdb reads the password from a file, as the server's account: a copy of
        # its own, removed as soon as initdb is done.
        pwfile = self.root / "initdb.pwfile"
        pwfile.unlink(missing_ok=True)
        run_as.create_file(pwfile, password + "\n")
        try:
            run_as.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    f"--auth={AUTH_METHOD}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _write_config(self) -> None:
        # Sized for a laptop and a 2-core CI machine, not for production.
        settings = {
            "password_encryption": AUTH_METHOD,
            "max_connections": "300",
            "shared_buffers": "512MB",
            "work_mem": "16MB",
            "maintenance_work_mem": "256MB",
            "wal_buffers": "16MB",
            "max_wal_size": "4GB",
            "checkpoint_timeout": "15min",
            "log_min_messages": "warning",
        }
        lines = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
        # The folder is the server account's: a symlink there is not followed.
        fd = os.open(self.data / "postgresql.auto.conf", os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)

    def _ensure_database(self, port: int) -> None:
        import psycopg

        with psycopg.connect(self.url(port, "postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
