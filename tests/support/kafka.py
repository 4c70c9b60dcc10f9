"""Reading back what landed on a topic."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer


async def first_record(bootstrap: str, topic: str) -> Any:
    """The topic's first record, read from the earliest offset."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return await consumer.getone()
    finally:
        await consumer.stop()
