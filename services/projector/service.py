"""The projector process: tails the store and projects each shard it holds.

The projection is split in `METERING_PROJECTOR_SHARDS` shards by organization
(services/projector/shards.py); one shard is the default. Each shard is
projected by one process at a time: the one holding its session-level
advisory lock, on a connection kept for that. Every process runs a task per
shard; a task without the lock keeps trying and takes the shard when its
holder dies (its connection closes and PostgreSQL releases the lock).

Processes share the shards out: a process takes at most ceil(shards /
processes), counting the processes by the application name on their
connections (`pg_stat_activity`), and one that holds more than its share
hands its highest shard over, between batches. With one shard, the first
process is active and the others wait, as before. New events wake the tasks
through LISTEN/NOTIFY; a poll every `poll_interval_s` is the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

import asyncpg

from services import event_store
from services.event_store import LayoutMismatch, Shard
from services.infra import database
from services.infra.database import POSTGRES_TRANSIENT
from services.infra.settings import ConnectionSettings
from services.infra.waiting import wait_event
from services.projector import metrics, shards
from services.projector.notifications import NotificationSender
from services.projector.projection import PROJECTION, BatchResult, prepare_connection
from services.projector.purchases import PurchaseSender
from services.projector.quarantine import held_count, project_next
from services.projector.settings import ProjectorSettings
from services.projector.webhooks import WebhookDeliverer
from services.retention import RetentionSettings, purge_periodically

log = logging.getLogger(__name__)

APPLICATION = "metering-projector"

MEMBERS = """
SELECT count(DISTINCT application_name) FROM pg_stat_activity
WHERE datname = current_database() AND application_name LIKE $1
"""
"""Projector processes connected to this database, each counted once."""


def instance_name() -> str:
    """This process's application name: unique, within PostgreSQL's 63 characters."""
    return f"{APPLICATION} {socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(3)}"


class Projector:
    """Runs the shards of one projection that this process may hold, until `stop` is set."""

    def __init__(
        self,
        connection: ConnectionSettings,
        settings: ProjectorSettings,
        projection: str = PROJECTION,
    ) -> None:
        self.database_url = connection.database_url
        self.settings = settings
        self.projection = projection
        self.shards = Shard.layout(settings.shards)
        self.name = instance_name()
        self.held: set[int] = set()
        self._taking = asyncio.Lock()
        self.purchases = PurchaseSender(
            connection.database_url, connection.kafka_bootstrap, connection.events_topic
        )
        self.notifications = NotificationSender(
            connection.database_url, connection.kafka_bootstrap, connection.notifications_topic
        )
        self.webhooks = WebhookDeliverer(connection.database_url, settings)

    async def run(self, stop: asyncio.Event) -> None:
        senders = [
            asyncio.create_task(outbox.run(stop))
            for outbox, wanted in (
                (self.purchases, self.settings.auto_purchase),
                (self.notifications, self.settings.notifications),
                (self.webhooks, self.settings.notifications),
            )
            if wanted
        ]
        purging = [
            asyncio.create_task(
                purge_periodically(self.database_url, table, RetentionSettings(), purged.inc)
            )
            for table, purged in (
                ("projector_quarantine", metrics.PURGED),
                ("notification_outbox", metrics.NOTIFICATIONS_PURGED),
            )
        ]
        try:
            await self._check_layout()
            try:
                async with asyncio.TaskGroup() as group:
                    for shard in self.shards:
                        group.create_task(self._run_shard(shard, stop))
            except* LayoutMismatch as mismatch:
                raise mismatch.exceptions[0] from None
        finally:
            for task in (*purging, *senders):
                task.cancel()

    async def _connect(self) -> asyncpg.Connection:
        return await database.connect(self.database_url, application_name=self.name)

    async def _check_layout(self) -> None:
        """Refuse to start on a store split in another number of shards."""
        connection = await self._connect()
        try:
            await shards.claim(connection, len(self.shards), self.projection)
        finally:
            await connection.close()

    async def _run_shard(self, shard: Shard, stop: asyncio.Event) -> None:
        label = shard.checkpoint(self.projection)
        while not stop.is_set():
            try:
                await self._hold(shard, stop)
            except POSTGRES_TRANSIENT as error:
                metrics.ACTIVE.labels(label).set(0)
                log.warning("%s: lost PostgreSQL (%s); reconnecting", label, error)
                await wait_event(stop, self.settings.lock_retry_s)

    async def _hold(self, shard: Shard, stop: asyncio.Event) -> None:
        """Take the shard when this process may, project it until stop or hand-over, repeat."""
        name = shard.checkpoint(self.projection)
        lock = await self._connect()
        try:
            while not stop.is_set():
                if await self._take(lock, shard):
                    try:
                        await self._project(shard, stop, lambda: self._must_yield(lock, shard))
                    finally:
                        self.held.discard(shard.index)
                        metrics.ACTIVE.labels(name).set(0)
                    await lock.execute("SELECT pg_advisory_unlock($1)", shards.lock_key(name))
                else:
                    log.debug("%s is run by another instance; waiting", name)
                await wait_event(stop, self.settings.lock_retry_s)
        finally:
            await lock.close()

    async def _share(self, lock: asyncpg.Connection) -> int:
        """The most shards this process should hold: ceil(shards / processes)."""
        members = int(await lock.fetchval(MEMBERS, f"{APPLICATION} %"))
        return -(-len(self.shards) // max(members, 1))

    async def _take(self, lock: asyncpg.Connection, shard: Shard) -> bool:
        key = shards.lock_key(shard.checkpoint(self.projection))
        async with self._taking:
            if len(self.held) >= await self._share(lock):
                return False
            if not await lock.fetchval("SELECT pg_try_advisory_lock($1)", key):
                return False
            self.held.add(shard.index)
            return True

    async def _must_yield(self, lock: asyncpg.Connection, shard: Shard) -> bool:
        """Whether this shard is the one to hand over: this process holds more than its share."""
        if shard.index != max(self.held):
            return False
        return len(self.held) > await self._share(lock)

    async def _project(
        self, shard: Shard, stop: asyncio.Event, must_yield: Callable[[], Awaitable[bool]]
    ) -> None:
        name = shard.checkpoint(self.projection)
        work = await self._connect()
        try:
            await shards.claim(work, len(self.shards), self.projection)
            await prepare_connection(work)
            wake = asyncio.Event()
            await event_store.listen(work, wake.set)
            metrics.ACTIVE.labels(name).set(1)
            log.info("%s: projecting", name)
            await self._tail(work, shard, wake, stop, must_yield)
        finally:
            await work.close()

    async def _tail(
        self,
        work: asyncpg.Connection,
        shard: Shard,
        wake: asyncio.Event,
        stop: asyncio.Event,
        must_yield: Callable[[], Awaitable[bool]],
    ) -> None:
        label = shard.checkpoint(self.projection)
        checked = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - checked >= self.settings.lock_retry_s:
                checked = time.monotonic()
                if await must_yield():
                    log.info("%s: handing over to another process", label)
                    return
            wake.clear()
            started = time.perf_counter()
            result = await project_next(
                work,
                self.settings.batch_size,
                self.projection,
                auto_purchase=self.settings.auto_purchase,
                notify=self.settings.notifications,
                shard=shard,
            )
            metrics.LAST_PROGRESS.labels(label).set_to_current_time()
            if result is not None:
                _record(label, result, time.perf_counter() - started)
                await self._observe_lag(work, label)
                self.purchases.poke.set()
                if result.notified:
                    self.notifications.poke.set()
                    self.webhooks.poke.set()
                continue
            await self._observe_lag(work, label)
            waiter = asyncio.create_task(wake.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait(
                {waiter, stopper},
                timeout=self.settings.poll_interval_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
            stopper.cancel()

    async def _observe_lag(self, work: asyncpg.Connection, label: str) -> None:
        metrics.HELD.labels(self.projection).set(await held_count(work))
        lag = await event_store.lag(work, label)
        if lag is not None:
            metrics.LAG_POSITIONS.labels(label).set(lag.positions)
            metrics.LAG_SECONDS.labels(label).set(lag.oldest_waiting_s)


def _record(label: str, result: BatchResult, seconds: float) -> None:
    metrics.BATCH_SECONDS.labels(label).observe(seconds)
    metrics.EVENTS.labels(label).inc(result.events)
    metrics.QUARANTINED.labels(label).inc(result.quarantined)
    freshness = metrics.FRESHNESS.labels(label)
    store_to_visible = metrics.STORE_TO_VISIBLE.labels(label)
    for since_time, since_stored in result.ages_s:
        freshness.observe(since_time)
        store_to_visible.observe(since_stored)
