"""The broker is a real Kafka: other clients (kcat) and aiokafka interoperate."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy.stack.local import Endpoints
from tests.support.kafka import first_record


def kcat_produce(bootstrap: str, topic: str, records: list[tuple[str, str]]) -> None:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is not installed (apt-get install kcat); .ci/run installs it"
    lines = "".join(f"{key}\t{value}\n" for key, value in records)
    subprocess.run(
        [kcat, "-b", bootstrap, "-t", topic, "-P", "-K", "\t", "-p", "0"],
        input=lines.encode(),
        check=True,
        timeout=60,
    )


async def read_with_group(bootstrap: str, topic: str, group: str, expected: int) -> list[str]:
    """Read `expected` records as member of `group`, then commit and leave."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    values: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while len(values) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                values += [r.value.decode() for r in records if r.value is not None]
        await consumer.commit()
    finally:
        await consumer.stop()
    return values


async def test_kcat_records_are_read_by_a_consumer_group_that_commits(
    servers: Endpoints, new_topic: str
) -> None:
    group = f"group-{uuid.uuid4().hex[:8]}"
    kcat_produce(servers.kafka_bootstrap, new_topic, [("org-1", "first"), ("org-1", "second")])

    assert await read_with_group(servers.kafka_bootstrap, new_topic, group, 2) == [
        "first",
        "second",
    ]

    consumer = AIOKafkaConsumer(bootstrap_servers=servers.kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(new_topic, 0))
    finally:
        await consumer.stop()
    assert committed == 2

    kcat_produce(servers.kafka_bootstrap, new_topic, [("org-1", "third")])
    assert await read_with_group(servers.kafka_bootstrap, new_topic, group, 1) == ["third"]


async def test_backdated_records_get_the_broker_append_time(
    servers: Endpoints, new_topic: str
) -> None:
    a_year_ago_ms = int((time.time() - 365 * 86400) * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(new_topic, b"late", partition=0, timestamp_ms=a_year_ago_ms)
    finally:
        await producer.stop()

    record = await first_record(servers.kafka_bootstrap, new_topic)
    log_append_time = 1
    assert record.timestamp_type == log_append_time
    assert abs(record.timestamp - time.time() * 1000) < 120_000
