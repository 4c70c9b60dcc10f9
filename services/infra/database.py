"""PostgreSQL access shared by the services: connection types, pools, transient errors."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one borrowed from a pool."""

POSTGRES_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)
"""Errors that pass when the server comes back: retried, never a reason to give up."""

CAUSED_BY_DATA = ("22", "23")
"""SQLSTATE classes a record's content can cause: data exceptions, constraint violations."""


def caused_by_data(error: BaseException) -> bool:
    """Whether `error` is one a record's content can cause; any other (our SQL, a full
    disk, a lost server) must never make good records be set aside one by one."""
    state = getattr(error, "sqlstate", None) or ""
    return isinstance(error, asyncpg.PostgresError) and state[:2] in CAUSED_BY_DATA


SESSION_SETTINGS = {"timezone": "UTC", "jit": "off"}
"""Pinned on every connection. The time zone: date arithmetic in SQL (a day, a month,
`::date`) must not depend on the server's default zone, which initdb copies from the
machine. JIT off: compiling each large batch statement cost ~35 ms per statement in the
projector (EXPLAIN ANALYZE of `attribute` on a 5,000-event batch), more than it saved."""


async def connect(url: str, application_name: str | None = None) -> asyncpg.Connection:
    """A connection of its own, with the session settings every service relies on
    (and `application_name`, which pg_stat_activity shows, when given)."""
    settings = dict(SESSION_SETTINGS)
    if application_name is not None:
        settings["application_name"] = application_name
    connection: asyncpg.Connection = await asyncpg.connect(url, server_settings=settings)
    return connection


async def create_pool(
    url: str,
    *,
    size: int = 2,
    init: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]] | None = None,
    read_only: bool = False,
) -> asyncpg.Pool:
    """A small pool with the session settings; `init` prepares each new connection.

    A `read_only` pool's users run single statements and change no session state
    (no SET, LISTEN, advisory lock or cursor): a connection goes back to it as it
    is, without asyncpg's reset (`RESET ALL; UNLISTEN *; ...`): a round trip per
    release, as many as the API's queries themselves before (py-spy: 4 % of a
    request's samples in `Connection.reset`, beside its wait).
    """
    pool: asyncpg.Pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=size,
        init=init,
        reset=_keep_session if read_only else None,
        server_settings=SESSION_SETTINGS,
    )
    return pool


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The reset of a read-only pool: nothing beyond what asyncpg always does on release
    (drop listeners, roll back a transaction left open)."""
