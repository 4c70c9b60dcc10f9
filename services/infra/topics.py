"""Kafka topics the services need, created with the settings correctness depends on."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


async def ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int = 4) -> None:
    """Create the topics if missing, with LogAppendTime (correctness rule 7)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was quicker
                await admin.create_topics(
                    [NewTopic(t, partitions, 1, topic_configs=TOPIC_CONFIG) for t in missing]
                )
    finally:
        await admin.close()
