"""Kafka topics the services need, created with the settings correctness depends on."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}

DAY_MS = 86_400_000


async def ensure_topics(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int = 4,
    retention_days: Mapping[str, int] | None = None,
) -> None:
    """Create the topics if missing, with LogAppendTime (correctness rule 7); a topic
    named in `retention_days` keeps its records that many days (`retention.ms`), set
    on an existing topic too."""
    retention = dict(retention_days or {})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was quicker
                await admin.create_topics(
                    [
                        NewTopic(t, partitions, 1, topic_configs=_config(t, retention))
                        for t in missing
                    ]
                )
        kept = [t for t in topics if t in existing and t in retention]
        if kept:
            # AlterConfigs replaces what was set on a topic: what was set stays, ours on top.
            was_set = await _set_configs(admin, kept)
            await admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC, t, {**was_set[t], **_config(t, retention)}
                    )
                    for t in kept
                ]
            )
    finally:
        await admin.close()


DYNAMIC_TOPIC_CONFIG = 1
"""DescribeConfigs' config source of a value set on the topic itself."""


async def _set_configs(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, dict[str, str]]:
    """The configuration values set on each topic itself (not the broker's defaults)."""
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
    )
    found: dict[str, dict[str, str]] = {t: {} for t in topics}
    for response in responses:
        for _error, _message, _type, name, entries in response.resources:
            found[name] = {
                entry[0]: entry[1] for entry in entries if entry[3] == DYNAMIC_TOPIC_CONFIG
            }
    return found


def _config(topic: str, retention_days: Mapping[str, int]) -> dict[str, str]:
    if topic not in retention_days:
        return dict(TOPIC_CONFIG)
    return {**TOPIC_CONFIG, "retention.ms": str(retention_days[topic] * DAY_MS)}
