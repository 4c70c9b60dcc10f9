"""A real Prometheus scrapes the running API and raises the 90 % alert for an organization
driven there through Kafka, ingest and the projector."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.stack.local import Endpoints
from deploy.stack.processes import free_port, port_answers
from services.emitter import Emitter
from tests.e2e.conftest import Pipeline
from tests.support.events import module_execution
from tests.support.waiting import eventually

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules" / "metering.yml"


@pytest.fixture
def prometheus(tmp_path: Path) -> tuple[str, Path]:
    """Where a Prometheus server (Debian's) will listen, and its config file."""
    assert shutil.which("prometheus"), "apt-get install prometheus (.ci/run installs it)"
    return f"http://127.0.0.1:{free_port()}", tmp_path / "prometheus.yml"


def start_prometheus(url: str, config: Path, api: str) -> subprocess.Popen[bytes]:
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        f"  - job_name: query-api\n    static_configs: [{{targets: ['{api}']}}]\n"
    )
    port = int(url.rsplit(":", 1)[1])
    process = subprocess.Popen(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={config.parent / 'tsdb'}",
        ],
        stdout=(config.parent / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not port_answers(port):
        assert time.monotonic() < deadline, (config.parent / "prometheus.log").read_text()
        time.sleep(0.2)
    return process


async def test_an_organization_past_90_percent_raises_the_alert(
    servers: Endpoints, pipeline: Pipeline, prometheus: tuple[str, Path]
) -> None:
    url, config = prometheus
    api_metrics = pipeline.api.metrics_url.removeprefix("http://").removesuffix("/metrics")
    server = start_prometheus(url, config, api_metrics)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        async with Emitter(servers.kafka_bootstrap, pipeline.topic, "test") as emitter:
            await emitter.emit(
                "com.metering.subscription.period_started.v1",
                {
                    "organization_id": "org-hot",
                    "plan": "core",
                    "plan_credits": "100",
                    "period_start": now - timedelta(days=3),
                    "period_end": now + timedelta(days=27),
                },
                event_id="sub",
                time=now - timedelta(days=3),
            )
            await emitter.send_many(
                [
                    module_execution("org-hot", i, Decimal("9.5"), when=now - timedelta(hours=1))
                    for i in range(10)
                ]
            )  # 95 of 100

        async def alerted() -> bool:
            async with httpx.AsyncClient() as client:
                alerts = (await client.get(f"{url}/api/v1/alerts")).json()["data"]["alerts"]
            return any(
                a["labels"]["alertname"] == "CreditsUsage90Percent"
                and a["labels"].get("organization") == "org-hot"
                and a["state"] in ("pending", "firing")
                for a in alerts
            )

        await eventually(alerted, timeout_s=90)
        async with httpx.AsyncClient() as client:
            alerts = (await client.get(f"{url}/api/v1/alerts")).json()["data"]["alerts"]
        names = {a["labels"]["alertname"] for a in alerts}
        assert "CreditsExhausted" not in names
        assert "CreditsUsage75Percent" not in names
    finally:
        server.terminate()
        server.wait(30)


async def test_an_event_deleted_behind_the_services_back_raises_the_reconciliation_alert(
    servers: Endpoints, pipeline: Pipeline, prometheus: tuple[str, Path], database_url: str
) -> None:
    url, config = prometheus
    api_metrics = pipeline.api.metrics_url.removeprefix("http://").removesuffix("/metrics")
    now = datetime.now(UTC).replace(microsecond=0)
    async with Emitter(servers.kafka_bootstrap, pipeline.topic, "test") as emitter:
        await emitter.send_many(
            [module_execution("org-r", i, Decimal("1"), when=now) for i in range(5)]
        )
    offsets = 'reconciliation_unreconciled{check="offsets"}'
    stored = 'projector_events_total{projection="usage"}'
    await eventually(lambda: pipeline.projector.metrics().get(stored, 0) >= 5)
    await eventually(lambda: pipeline.api.metrics().get(offsets) == 0)  # checked, all there
    db = await asyncpg.connect(database_url)
    try:
        await db.execute("DELETE FROM events WHERE position = (SELECT min(position) FROM events)")
    finally:
        await db.close()
    await eventually(lambda: pipeline.api.metrics().get(offsets) == 1)
    server = start_prometheus(url, config, api_metrics)
    try:

        async def alerted() -> bool:
            async with httpx.AsyncClient() as client:
                alerts = (await client.get(f"{url}/api/v1/alerts")).json()["data"]["alerts"]
            return any(
                a["labels"]["alertname"] == "EventsUnreconciled"
                and a["labels"].get("check") == "offsets"
                and a["state"] in ("pending", "firing")
                for a in alerts
            )

        await eventually(alerted, timeout_s=90)
    finally:
        server.terminate()
        server.wait(30)
