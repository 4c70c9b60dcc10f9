"""The projector process: one active instance per projection, tailing the store.

The active instance holds a session-level advisory lock on a connection of
its own; a standby keeps trying and takes over when the active one dies (its
connection closes and PostgreSQL releases the lock). New events wake it
through LISTEN/NOTIFY; a poll every `poll_interval_s` is the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib

import asyncpg

from services import event_store
from services.infra import database
from services.infra.database import POSTGRES_TRANSIENT
from services.infra.settings import ConnectionSettings
from services.infra.waiting import wait_event
from services.projector import metrics
from services.projector.projection import PROJECTION, prepare_connection
from services.projector.purchases import PurchaseSender
from services.projector.quarantine import held_count, project_next
from services.projector.settings import ProjectorSettings

log = logging.getLogger(__name__)


def lock_key(projection: str) -> int:
    return zlib.crc32(f"metering.projection.{projection}".encode())


class Projector:
    """Runs one projection until `stop` is set."""

    def __init__(
        self,
        connection: ConnectionSettings,
        settings: ProjectorSettings,
        projection: str = PROJECTION,
    ) -> None:
        self.database_url = connection.database_url
        self.settings = settings
        self.projection = projection
        self._wake = asyncio.Event()
        self.purchases = PurchaseSender(
            connection.database_url, connection.kafka_bootstrap, connection.events_topic
        )

    async def run(self, stop: asyncio.Event) -> None:
        sender = (
            asyncio.create_task(self.purchases.run(stop)) if self.settings.auto_purchase else None
        )
        try:
            await self._run(stop)
        finally:
            if sender is not None:
                sender.cancel()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._run_while_connected(stop)
            except POSTGRES_TRANSIENT as error:
                metrics.ACTIVE.labels(self.projection).set(0)
                log.warning("lost PostgreSQL (%s); reconnecting", error)
                await asyncio.sleep(self.settings.lock_retry_s)

    async def _run_while_connected(self, stop: asyncio.Event) -> None:
        lock = await database.connect(self.database_url)
        try:
            while not await lock.fetchval(
                "SELECT pg_try_advisory_lock($1)", lock_key(self.projection)
            ):
                log.info("projection %s is run by another instance; waiting", self.projection)
                if await wait_event(stop, self.settings.lock_retry_s):
                    return
            metrics.ACTIVE.labels(self.projection).set(1)
            work = await database.connect(self.database_url)
            try:
                await prepare_connection(work)
                await event_store.listen(work, self._wake.set)
                await self._tail(work, stop)
            finally:
                await work.close()
        finally:
            metrics.ACTIVE.labels(self.projection).set(0)
            await lock.close()

    async def _tail(self, work: asyncpg.Connection, stop: asyncio.Event) -> None:
        label = self.projection
        while not stop.is_set():
            self._wake.clear()
            started = time.perf_counter()
            result = await project_next(
                work,
                self.settings.batch_size,
                self.projection,
                auto_purchase=self.settings.auto_purchase,
            )
            metrics.LAST_PROGRESS.labels(label).set_to_current_time()
            if result is not None:
                metrics.BATCH_SECONDS.labels(label).observe(time.perf_counter() - started)
                metrics.EVENTS.labels(label).inc(result.events)
                metrics.QUARANTINED.labels(label).inc(result.quarantined)
                freshness = metrics.FRESHNESS.labels(label)
                store_to_visible = metrics.STORE_TO_VISIBLE.labels(label)
                for since_time, since_stored in result.ages_s:
                    freshness.observe(since_time)
                    store_to_visible.observe(since_stored)
                await self._observe_lag(work)
                self.purchases.poke.set()
                continue
            await self._observe_lag(work)
            waiter = asyncio.create_task(self._wake.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait(
                {waiter, stopper},
                timeout=self.settings.poll_interval_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
            stopper.cancel()

    async def _observe_lag(self, work: asyncpg.Connection) -> None:
        metrics.HELD.labels(self.projection).set(await held_count(work))
        lag = await event_store.lag(work, self.projection)
        if lag is not None:
            metrics.LAG_POSITIONS.labels(self.projection).set(lag.positions)
            metrics.LAG_SECONDS.labels(self.projection).set(lag.oldest_waiting_s)
