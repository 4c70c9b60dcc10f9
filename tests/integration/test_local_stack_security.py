"""The local stack keeps its servers to the user who started it (review C3).

The PostgreSQL cluster lives in a private folder with a random name, refuses a
folder someone else made, never re-owns a file through a symlink, and asks every
client for a generated password; Kafka listens on 127.0.0.1 only. Every test
here uses servers, folders and ports of its own, never the running stack.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest

from deploy.stack.kafka import KafkaBroker
from deploy.stack.local import DATABASE_URL_ENV, KAFKA_BOOTSTRAP_ENV, LocalStack
from deploy.stack.postgres import SUPERUSER, PostgresServer, RunAs, find_bindir
from deploy.stack.processes import free_port

AS_ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(
    not AS_ROOT and not os.environ.get("CI"),
    reason="only root can give files to another account (in CI these run, and fail if not root)",
)


def _nobody() -> RunAs:
    entry = pwd.getpwnam("nobody")
    return RunAs(entry.pw_uid, entry.pw_gid)


def _public_folder(prefix: str) -> Path:
    """A folder in the system's temporary folder that the server's account may enter."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(folder, 0o755)
    return folder


@pytest.fixture
def postgres_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stacks start their own PostgreSQL; Kafka is 'external' (never started nor contacted).

    No password comes from the environment or a ~/.pgpass either.
    """
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.setenv(KAFKA_BOOTSTRAP_ENV, "127.0.0.1:9")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", os.devnull)


@pytest.fixture
def stack_root(postgres_only: None) -> Iterator[Path]:
    """A stack folder of the test's own, in a place the server's account can reach."""
    root = _public_folder("metering-stack-")
    yield root
    _remove_stack(LocalStack(root))


def _remove_stack(stack: LocalStack) -> None:
    stack.down()
    if stack.postgres.root.exists():  # the cluster may live outside the stack folder
        shutil.rmtree(stack.postgres.root)
    shutil.rmtree(stack.root, ignore_errors=True)


@pytest.fixture
def own_server(postgres_only: None) -> Iterator[tuple[PostgresServer, int]]:
    """A started PostgreSQL server in a temporary folder, and its port."""
    root = _public_folder("metering-pg-")
    server, port = PostgresServer(root), free_port()
    try:
        server.start(port)
        yield server, port
    finally:
        server.stop()
        shutil.rmtree(root)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))


def _connect(
    dsn: str | None = None, *, socket_dir: Path | None = None, port: int | None = None
) -> None:
    """Open and close one asyncpg connection (raises what asyncpg raises)."""

    async def connect() -> None:
        host = None if socket_dir is None else str(socket_dir)
        connection = await asyncpg.connect(
            dsn, host=host, port=port, user=SUPERUSER if dsn is None else None, timeout=10
        )
        await connection.close()

    asyncio.run(connect())


def _assert_private(server: PostgresServer) -> None:
    """The folder is the current user's and closed to others; the cluster, the server's."""
    run_as = RunAs.for_current_user()
    folder = server.root.lstat()
    assert stat.S_ISDIR(folder.st_mode)
    assert folder.st_uid == os.geteuid()
    if run_as.gid is None:
        assert stat.S_IMODE(folder.st_mode) == 0o700
    else:  # the server's account gets in through the group, and may only enter
        assert stat.S_IMODE(folder.st_mode) == 0o710
        assert folder.st_gid == run_as.gid
    data = server.data.lstat()
    assert stat.S_IMODE(data.st_mode) == 0o700
    assert data.st_uid == (os.geteuid() if run_as.uid is None else run_as.uid)
    password = server.password_file.lstat()
    assert stat.S_ISREG(password.st_mode)
    assert stat.S_IMODE(password.st_mode) == 0o600
    assert password.st_uid == os.geteuid()


@pytest.mark.servers
def test_the_cluster_folder_is_private_random_and_remembered_in_the_state(
    stack_root: Path,
) -> None:
    stack = LocalStack(stack_root)
    first = stack.up()
    folder = stack.postgres.root

    assert json.loads((stack_root / "state.json").read_text())["postgres_dir"] == str(folder)
    assert folder.parent == stack_root
    assert folder.name.startswith("postgres-")
    assert folder.name != "postgres"  # where it was, for anyone to know beforehand
    _assert_private(stack.postgres)

    stack.down()
    assert LocalStack(stack_root).up() == first  # found again: same folder, same password
    assert LocalStack(stack_root).postgres.root == folder

    stack.down()
    shutil.rmtree(folder)
    LocalStack(stack_root).up()  # its folder gone, the same stack gets a new random one

    assert stack.postgres.root.parent == stack_root
    assert stack.postgres.root != folder


@pytest.mark.servers
@as_root
@pytest.mark.usefixtures("postgres_only")
def test_a_stack_out_of_the_server_accounts_reach_gets_a_random_folder_in_tmp(
    tmp_path: Path,
) -> None:
    # A checkout in a private folder (under /root, say); pytest's tmp_path is one.
    root = tmp_path / ".stack"
    stack = LocalStack(root)
    try:
        stack.up()

        folder = stack.postgres.root
        predictable = hashlib.sha256(str(root).encode()).hexdigest()[:12]
        assert folder.parent == Path(tempfile.gettempdir())
        assert folder.name.startswith("metering-postgres-")
        assert folder.name != f"metering-postgres-{predictable}"
        _assert_private(stack.postgres)
        assert json.loads((root / "state.json").read_text())["postgres_dir"] == str(folder)
    finally:
        _remove_stack(stack)


@as_root
def test_a_folder_another_account_owns_is_refused(stack_root: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="metering-postgres-"))
    nobody = pwd.getpwnam("nobody")
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)  # as if that account had made it first
    try:
        with pytest.raises(PermissionError, match=r"belongs to uid \d+.*refuses"):
            PostgresServer(folder).start(free_port())

        # The same through the stack's state (a /tmp cleaned, and the name taken since).
        state = {"postgres": free_port(), "kafka": 9, "kafka_controller": 9}
        (stack_root / "state.json").write_text(json.dumps({**state, "postgres_dir": str(folder)}))
        with pytest.raises(PermissionError, match=r"belongs to uid \d+.*refuses"):
            LocalStack(stack_root).up()

        assert list(folder.iterdir()) == []
        assert folder.stat().st_uid == nobody.pw_uid
    finally:
        PostgresServer(folder).stop()  # had it started
        shutil.rmtree(folder)
        (stack_root / "state.json").unlink(missing_ok=True)


def test_a_symlink_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    target = _public_folder("metering-postgres-")
    link = tmp_path / "cluster"
    link.symlink_to(target, target_is_directory=True)
    try:
        with pytest.raises(PermissionError, match="not a folder"):
            PostgresServer(link).start(free_port())
        assert list(target.iterdir()) == []
    finally:
        shutil.rmtree(target)


@as_root
def test_giving_a_tree_to_the_server_account_never_follows_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    for secret in (outside / "secret", outside / "folder" / "secret"):
        secret.write_text("root's")
        secret.chmod(0o600)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("")
    (tree / "evil").symlink_to(outside / "secret")
    (tree / "sub" / "evil-folder").symlink_to(outside / "folder", target_is_directory=True)
    nobody = _nobody()

    nobody.own(tree)

    for path in (outside, outside / "secret", outside / "folder", outside / "folder" / "secret"):
        assert path.stat().st_uid == 0, path
    for path in (tree, *tree.rglob("*")):
        assert path.lstat().st_uid == nobody.uid, path


@pytest.mark.servers
@as_root
def test_a_symlink_planted_in_the_cluster_does_not_give_its_target_away(
    own_server: tuple[PostgresServer, int], tmp_path: Path
) -> None:
    server, port = own_server
    secret = tmp_path / "secret"
    secret.write_text("root's")
    secret.chmod(0o600)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "secret").write_text("root's")
    server.stop()
    # What the server's account could do: its cluster is its to write.
    (server.data / "evil").symlink_to(secret)
    (server.data / "evil-folder").symlink_to(tmp_path / "folder", target_is_directory=True)

    server.start(port)  # re-owns the cluster's files before starting

    assert (server.data / "evil").lstat().st_uid == _nobody().uid  # walked over, not through
    assert secret.stat().st_uid == 0
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (tmp_path / "folder").stat().st_uid == 0
    assert (tmp_path / "folder" / "secret").stat().st_uid == 0


@pytest.mark.servers
def test_the_server_asks_every_client_for_the_generated_password(
    own_server: tuple[PostgresServer, int],
) -> None:
    server, port = own_server
    url = server.url(port)
    password = server.password_file.read_text().strip()

    assert len(password) >= 32
    assert unquote(urlsplit(url).password or "") == password
    _assert_private(server)
    _connect(dsn=url)  # with it: in
    with psycopg.connect(url) as conn:
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        rules = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()
        assert rules == [("scram-sha-256",)]
    with pytest.raises(asyncpg.InvalidPasswordError):
        _connect(dsn=_without_password(url))
    with pytest.raises(asyncpg.InvalidPasswordError):
        _connect(dsn=url.replace(password, "not-the-password"))
    with pytest.raises(asyncpg.InvalidPasswordError):  # nor through the socket
        _connect(socket_dir=server.root / "run", port=port)


def test_the_url_carries_the_password_url_quoted(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path)
    assert server.url(5432) == "postgresql://postgres@127.0.0.1:5432/metering"

    server.password_file.write_text("p@ss/w:rd%?#\n")

    parts = urlsplit(server.url(5432, "postgres"))
    assert unquote(parts.password or "") == "p@ss/w:rd%?#"
    assert (parts.username, parts.hostname, parts.port, parts.path) == (
        "postgres",
        "127.0.0.1",
        5432,
        "/postgres",
    )


def _start_trust_cluster(folder: Path, port: int) -> None:
    """A cluster as the stack made it before issue 12: trust, in a folder of the server's."""
    run_as = RunAs.for_current_user()
    bindir = find_bindir()
    for path in (folder, folder / "run", folder / "data"):
        path.mkdir()
        if run_as.uid is not None and run_as.gid is not None:
            os.chown(path, run_as.uid, run_as.gid)
    run_as.run(
        [str(bindir / "initdb"), "-D", str(folder / "data"), "-U", SUPERUSER, "--auth=trust"]
    )
    run_as.run(
        [
            *(str(bindir / "pg_ctl"), "start", "-D", str(folder / "data"), "-w"),
            *("-l", str(folder / "postgres.log")),
            *("-o", f"-p {port} -k {folder / 'run'} -c listen_addresses=127.0.0.1"),
        ]
    )
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres") as conn:
        conn.autocommit = True
        conn.execute('CREATE DATABASE "metering"')


@pytest.mark.servers
@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_an_older_stacks_trust_cluster_is_made_anew_with_a_password(
    stack_root: Path, running: bool
) -> None:
    port = free_port()
    ports = {"postgres": port, "kafka": free_port(), "kafka_controller": free_port()}
    (stack_root / "state.json").write_text(json.dumps(ports))
    _start_trust_cluster(stack_root / "postgres", port)
    stack = LocalStack(stack_root)

    old_url = stack.endpoints().database_url  # `stack env` for the old, running stack
    assert old_url == f"postgresql://postgres@127.0.0.1:{port}/metering"
    with psycopg.connect(old_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert stack.status()[0].state == "running"
    if not running:
        stack.down()  # `stack down` still finds and stops it
        assert stack.status()[0].state == "stopped"

    endpoints = stack.up()

    assert urlsplit(endpoints.database_url).port == port
    assert urlsplit(endpoints.database_url).password
    _connect(dsn=endpoints.database_url)
    with pytest.raises(asyncpg.InvalidPasswordError):
        _connect(dsn=old_url)
    assert not (stack_root / "postgres").exists()
    assert stack.postgres.root.parent == stack_root
    _assert_private(stack.postgres)
    assert stack.status()[0].state == "running"
    assert "***" in stack.status()[0].address  # status shows the address, not the password


def test_kafka_listens_on_loopback_only(tmp_path: Path) -> None:
    properties = KafkaBroker(tmp_path)._write_properties(port=9092, controller_port=9093)
    settings = dict(
        line.split("=", 1)
        for line in properties.read_text().splitlines()
        if line and not line.startswith("#")
    )
    addresses = [
        address
        for key in ("listeners", "advertised.listeners", "controller.quorum.bootstrap.servers")
        for address in settings[key].split(",")
    ]

    hosts = {urlsplit(a if "://" in a else f"//{a}").hostname for a in addresses}
    assert hosts == {"127.0.0.1"}
    assert len(addresses) == 4
    assert "controller.quorum.voters" not in settings
