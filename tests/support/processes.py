"""The services as real processes for the tests, each against its own database and topics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.stack.local import Endpoints
from deploy.stack.processes import free_port, port_answers
from deploy.stack.services import ServiceProcess


class ProjectorProcess(ServiceProcess):
    """`metering projector run` against one database."""

    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        batch_size: int = 500,
        kafka_bootstrap: str = "",
        topic: str = "",
        shards: int = 1,
        lock_retry_s: float = 2.0,
        notifications_topic: str = "",
        webhook_retry_s: float = 5.0,
        webhook_retry_window_s: float = 86_400.0,
    ) -> None:
        port = free_port()
        env = {
            "METERING_DATABASE_URL": database_url,
            "METERING_PROJECTOR_METRICS_PORT": str(port),
            "METERING_PROJECTOR_BATCH_SIZE": str(batch_size),
            "METERING_PROJECTOR_SHARDS": str(shards),
            "METERING_PROJECTOR_LOCK_RETRY_S": str(lock_retry_s),
            "METERING_PROJECTOR_AUTO_PURCHASE": "true" if topic else "false",
            "METERING_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "METERING_EVENTS_TOPIC": topic,
            # Notifications (and their webhooks) only where a test gives them a topic.
            "METERING_PROJECTOR_NOTIFICATIONS": "true" if notifications_topic else "false",
            "METERING_NOTIFICATIONS_TOPIC": notifications_topic,
            "METERING_PROJECTOR_WEBHOOK_RETRY_S": str(webhook_retry_s),
            "METERING_PROJECTOR_WEBHOOK_RETRY_WINDOW_S": str(webhook_retry_window_s),
        }
        super().__init__(["projector", "run"], env, port, log_dir)


class IngestProcess(ServiceProcess):
    """`metering ingest run` against the given servers and topics."""

    def __init__(
        self,
        database_url: str,
        kafka_bootstrap: str,
        topic: str,
        dlq_topic: str,
        group_id: str,
        log_dir: Path,
        max_batch: int = 2000,
        instance_id: str = "",
    ) -> None:
        port = free_port()
        env = {
            "METERING_DATABASE_URL": database_url,
            "METERING_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "METERING_EVENTS_TOPIC": topic,
            "METERING_DLQ_TOPIC": dlq_topic,
            "METERING_INGEST_GROUP_ID": group_id,
            "METERING_INGEST_METRICS_PORT": str(port),
            "METERING_INGEST_MAX_BATCH": str(max_batch),
            "METERING_INGEST_RETRY_MAX_S": "0.5",
        }
        if instance_id:
            env["METERING_INGEST_INSTANCE_ID"] = instance_id
        super().__init__(["ingest", "run"], env, port, log_dir)


class ApiProcess(ServiceProcess):
    """`metering api run` against one database; its /metrics is on an operations port."""

    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        jwt_secret: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        settings = {
            "METERING_DATABASE_URL": database_url,
            "METERING_API_JWT_SECRET": jwt_secret,
            "METERING_API_USAGE_GAUGE_MIN_RATIO": "0.05",
            "METERING_API_USAGE_GAUGE_REFRESH_S": "0",
            "METERING_API_RECONCILIATION_REFRESH_S": "1",
            "METERING_API_RECONCILIATION_TOTALS_REFRESH_S": "1",
            "METERING_API_RATE_LIMIT": "100000/second",
            "METERING_API_METRICS_PORT": str(free_port()),
            **(env or {}),
        }
        metrics_port = int(settings["METERING_API_METRICS_PORT"])
        super().__init__(["api", "run", "--port", str(self.port)], settings, metrics_port, log_dir)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.metrics_host = settings.get("METERING_API_METRICS_HOST", "127.0.0.1")
        self.metrics_url = f"http://{self.metrics_host}:{metrics_port}/metrics"

    def start(self) -> None:
        """Start, and wait until the API port answers too (it opens after the metrics port)."""
        super().start()
        deadline = time.monotonic() + 30
        while not port_answers(self.port):
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {self.log()}")
            time.sleep(0.05)


def ingest_on(servers: Endpoints, database_url: str, topic: str, log_dir: Path) -> IngestProcess:
    """An ingest process in a consumer group of its own, on `topic` (dead letters to
    `topic`.dlq)."""
    return IngestProcess(
        database_url,
        servers.kafka_bootstrap,
        topic,
        f"{topic}.dlq",
        f"ingest-{uuid.uuid4().hex[:8]}",
        log_dir,
    )


@contextmanager
def running(*processes: ServiceProcess) -> Iterator[None]:
    """The processes started in turn, and stopped in reverse order (those started) after."""
    started: list[ServiceProcess] = []
    try:
        for process in processes:
            process.start()
            started.append(process)
        yield
    finally:
        for process in reversed(started):
            process.stop()
