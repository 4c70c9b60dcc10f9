"""The dead-letter topic: every refused record, bytes and headers intact, with its reason.

A record larger than the largest accepted one (an `oversized` rejection) is
cut to that size, with `dlq_truncated` and `dlq_original_bytes` headers: the
topic may refuse a copy as large as the original plus our headers, and a send
it refuses would be retried for ever. `rejected_events.raw` keeps every byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from services.ingest.records import Rejection


class KafkaDeadLetters:
    """Publishes each refused record, bytes and headers intact, with the reason in headers."""

    transient: tuple[type[BaseException], ...] = (KafkaError, OSError, TimeoutError)

    def __init__(self, broker: KafkaBroker, topic: str, max_value_bytes: int) -> None:
        self._broker = broker
        self._topic = topic
        self._max_value_bytes = max_value_bytes

    async def send(self, rejections: Sequence[Rejection]) -> None:
        await asyncio.gather(*(self._send_one(r) for r in rejections))

    async def _send_one(self, rejection: Rejection) -> None:
        record = rejection.record
        headers = {name: value.decode("utf-8", "replace") for name, value in record.headers}
        headers |= {
            "dlq_reason_code": rejection.reason_code.value,
            "dlq_reason": rejection.reason[:1000],
            "dlq_topic": record.origin.topic,
            "dlq_partition": str(record.origin.partition),
            "dlq_offset": str(record.origin.offset),
        }
        value = record.value or b""
        if len(value) > self._max_value_bytes:
            # Too large to be sure the topic takes it: a cut copy with a marker,
            # never a send retried for ever. The whole bytes stay in rejected_events.
            headers |= {"dlq_truncated": "true", "dlq_original_bytes": str(len(value))}
            value = value[: self._max_value_bytes]
        await self._broker.publish(value, topic=self._topic, key=record.key, headers=headers)
