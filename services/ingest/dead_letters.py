"""The dead-letter topic: every refused record, bytes and headers intact, with its reason."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from services.ingest.records import Rejection


class KafkaDeadLetters:
    """Publishes each refused record, bytes and headers intact, with the reason in headers."""

    transient: tuple[type[BaseException], ...] = (KafkaError, OSError, TimeoutError)

    def __init__(self, broker: KafkaBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic

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
        await self._broker.publish(
            record.value or b"", topic=self._topic, key=record.key, headers=headers
        )
