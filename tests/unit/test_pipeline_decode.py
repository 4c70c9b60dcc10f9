"""The ingest loop decodes a batch a chunk at a time, and the write in flight moves between chunks.

(The pipeline against a real broker and server: tests/integration/test_ingest_pipeline.py.)
"""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any, cast

from services.emitter.client import encode
from services.ingest.decoding import Limits
from services.ingest.ingestor import Ingestor
from services.ingest.pipeline import DECODE_CHUNK, IngestPipeline, to_raw
from services.ingest.records import NewEvent
from tests.support.events import module_execution, random_credits


def fetched(count: int) -> list[Any]:
    """aiokafka-like consumer records: valid module executions, every seventh not JSON."""
    rng = random.Random(7)
    records = []
    for offset in range(count):
        event = module_execution("org-1", offset, random_credits(rng))
        value, headers = encode(event, "structured")
        records.append(
            SimpleNamespace(
                topic="events",
                partition=0,
                offset=offset,
                key=b"org-1",
                value=b"{not json" if offset % 7 == 3 else value,
                headers=headers,
            )
        )
    return records


async def test_a_batch_decoded_in_chunks_is_the_batch_decoded_at_once() -> None:
    ingestor = Ingestor(cast(Any, None), cast(Any, None), Limits(max_future_s=10**9))
    pipeline = IngestPipeline(cast(Any, None), ingestor, 5000, 200, 1.0)
    records = fetched(3 * DECODE_CHUNK + 7)
    ticks = 0
    decoding = True

    async def write_in_flight() -> None:
        nonlocal ticks
        while decoding:
            ticks += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(write_in_flight())
    await asyncio.sleep(0)
    started = ticks
    decoded = await pipeline._decode(records)
    decoding = False
    await writer

    assert decoded == ingestor.decode_batch([to_raw(record) for record in records])
    assert [event.record.origin.offset for event in decoded.events] == [
        offset for offset in range(len(records)) if offset % 7 != 3
    ]
    assert all(isinstance(event, NewEvent) for event in decoded.events)
    assert len(decoded.rejections) == sum(1 for offset in range(len(records)) if offset % 7 == 3)
    assert ticks - started >= 4, "the loop never turned while the batch was decoded"
