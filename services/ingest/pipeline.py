"""The ingest loop: batch N+1 is fetched and decoded while batch N is written.

Decoding is Python work and writing is mostly PostgreSQL's, so the two overlap:
the loop reads a batch from Kafka, decodes it a chunk at a time (the write in
flight moves on between chunks), then waits for the write of the previous
batch, and starts this one's. A batch's offsets are committed, as the
exact offsets after its records, only once its write returned (durable), and
batches are written and committed in the order they were read, so the
committed position never runs ahead of the store.

When a write fails for a reason that is not a record's (a bug; servers going
away are retried inside the write), the batch after it, decoded but not
written, is dropped, both are read again from their first offsets after a
pause, and nothing is committed past them: redelivered, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from services.ingest.ingestor import DecodedBatch, Ingestor
from services.ingest.records import RawRecord, RecordOrigin

log = logging.getLogger(__name__)

DECODE_CHUNK = 250
"""Records decoded between two turns of the event loop (a few milliseconds of work)."""


def to_raw(record: Any) -> RawRecord:
    """An aiokafka ConsumerRecord as ingest's own, library-free record."""
    return RawRecord(
        origin=RecordOrigin(record.topic, record.partition, record.offset),
        key=record.key,
        value=record.value,
        headers=tuple(record.headers or ()),
    )


@dataclass(frozen=True)
class ReadBatch:
    """A decoded batch and where it sits in each partition."""

    decoded: DecodedBatch
    first: Mapping[TopicPartition, int]
    """Offset of the batch's first record per partition: where to read again from."""
    after: Mapping[TopicPartition, int]
    """Offset after its last record per partition: what to commit once it is durable."""
    generation: int
    """Rebalances seen before it was read: a batch read before one is not written."""


class IngestPipeline(ConsumerRebalanceListener):  # type: ignore[misc]
    """Reads, decodes and writes batches, one write in flight, until stopped."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        ingestor: Ingestor,
        max_batch: int,
        batch_timeout_ms: int,
        pause_after_failure_s: float,
    ) -> None:
        self._consumer = consumer
        self._ingestor = ingestor
        self._max_batch = max_batch
        self._batch_timeout_ms = batch_timeout_ms
        self._pause_s = pause_after_failure_s
        self._writing: asyncio.Task[bool] | None = None
        self._failed: ReadBatch | None = None
        self._generation = 0
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Until `stop`: the write in flight is finished and committed before it returns."""
        try:
            while not self._stopping.is_set():
                try:
                    batch = await self._read()
                except Exception:
                    # Kafka errors the client does not retry itself: the loop never ends on one.
                    log.exception("reading a batch failed; reading again")
                    await self._pause()
                    continue
                if not await self._finish_write():
                    self._rewind(batch)
                    await self._pause()
                    continue
                if batch is not None and batch.generation == self._generation:
                    self._writing = asyncio.create_task(self._write(batch))
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await self._finish_write()

    def stop(self) -> None:
        """Read no more; `run` returns once the write in flight is durable and committed."""
        self._stopping.set()

    def abort(self) -> None:
        """Stop now, abandoning the write in flight (it is read again: nothing was committed)."""
        self._stopping.set()
        if self._writing is not None:
            self._writing.cancel()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The write in flight commits while its partitions are still ours. Whatever
        # was read and not committed is read again: each partition (re)assigned
        # starts from its committed offset, so a failed batch needs no rewind and
        # a batch decoded before now is not written.
        await self._finish_write()
        self._failed = None
        self._generation += 1

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass

    async def _read(self) -> ReadBatch | None:
        fetched = await self._consumer.getmany(
            timeout_ms=self._batch_timeout_ms, max_records=self._max_batch
        )
        if not fetched:
            return None
        first = {tp: rs[0].offset for tp, rs in fetched.items()}
        try:
            decoded = await self._decode([r for partition in fetched.values() for r in partition])
        except Exception:
            for tp, offset in first.items():  # a bug, not a record: read them again
                self._consumer.seek(tp, offset)
            raise
        return ReadBatch(
            decoded,
            first=first,
            after={tp: rs[-1].offset + 1 for tp, rs in fetched.items()},
            generation=self._generation,
        )

    async def _decode(self, fetched: list[Any]) -> DecodedBatch:
        """Decode a batch a chunk at a time, letting the write in flight go on between chunks.

        The write is a few statements in a row, and the event loop sends each one
        once the one before has returned. Decoding a whole batch at once held the
        loop for its whole length, so PostgreSQL sat idle between statements and
        decoding and writing took turns instead of overlapping.
        """
        parts = []
        for start in range(0, len(fetched), DECODE_CHUNK):
            chunk = [to_raw(record) for record in fetched[start : start + DECODE_CHUNK]]
            parts.append(self._ingestor.decode_batch(chunk))
            await asyncio.sleep(0)
        return DecodedBatch.joined(parts)

    async def _write(self, batch: ReadBatch) -> bool:
        """Store and commit; False (and the batch kept in `_failed`) if storing failed."""
        try:
            await self._ingestor.store(batch.decoded)
        except Exception:
            log.exception("a batch failed; it will be read again")
            self._failed = batch
            return False
        owned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in batch.after.items() if tp in owned}
        try:
            if offsets:
                await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            # The group moved the partitions on: the batch is durable, and their new
            # owner reads it again and finds it stored (counted as redelivered).
            log.warning("offsets not committed after a rebalance: %s", error)
        except KafkaError as error:
            # The batch is durable; the next batch's commit covers these offsets, and
            # should none come, a restart reads it again and finds it stored.
            log.warning("offsets not committed (%s); the next commit covers them", error)
        return True

    async def _finish_write(self) -> bool:
        """Wait for the write in flight (the loop and a rebalance may both wait on it)."""
        writing = self._writing
        if writing is None:
            return True
        succeeded = await writing
        if self._writing is writing:
            self._writing = None
        return succeeded

    def _rewind(self, read_after: ReadBatch | None) -> None:
        """Read the failed batch, and the one decoded behind it, again from their start."""
        failed, self._failed = self._failed, None
        if failed is None:
            return  # a rebalance came between: every partition restarts from its commit
        first = dict(read_after.first) if read_after is not None else {}
        first.update(failed.first)  # the failed batch was read first: its offsets are lower
        owned = self._consumer.assignment()
        for tp, offset in first.items():
            if tp in owned:
                self._consumer.seek(tp, offset)

    async def _pause(self) -> None:
        # A failure that is not a server going away may repeat: do not spin on it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._pause_s)
