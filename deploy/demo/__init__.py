"""`make run`: the stack, the three services and a scenario runner simulator, until Ctrl-C.

Dev tooling: it is not part of the installed service packages.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.progress import Progress

from deploy.demo import simulator
from deploy.stack.local import LocalStack
from deploy.stack.processes import free_port, port_is_free
from deploy.stack.services import ServiceProcess
from services import event_store
from services.emitter import Emitter
from services.infra import database
from services.infra.migrations.runner import migrate
from services.infra.topics import ensure_topics
from services.projector.projection import PROJECTION
from services.query_api.auth import sign

TOPIC, DLQ = "metering.events", "metering.events.dlq"
console = Console()


def _port(preferred: int) -> int:
    return preferred if port_is_free(preferred) else free_port()


async def _send_traffic(bootstrap: str, organizations: int, runs: int) -> int:
    orgs = simulator.organizations(organizations)
    now = simulator.now()
    events = simulator.setup(orgs, now) + list(simulator.runs(orgs, runs, now))
    duplicates = events[:: max(1, len(events) // 200)]  # a runner that retries
    async with Emitter(bootstrap, TOPIC, simulator.SOURCE) as emitter:
        with Progress(console=console) as progress:
            task = progress.add_task("demo traffic", total=len(events) + len(duplicates))
            for start in range(0, len(events), 2000):
                chunk = events[start : start + 2000]
                await emitter.send_many(chunk)
                progress.advance(task, len(chunk))
            await emitter.send_many(duplicates)
            progress.advance(task, len(duplicates))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in simulator.invalid_records():
            await producer.send_and_wait(TOPIC, value, key=key)
    finally:
        await producer.stop()
    return len(events)


async def _caught_up(database_url: str) -> bool:
    connection = await database.connect(database_url)
    try:
        stored = await event_store.max_position(connection) > 0
        return stored and await event_store.all_caught_up(connection, PROJECTION)
    finally:
        await connection.close()


def run_demo(organizations: int = 20, runs: int = 1500, exit_when_ready: bool = False) -> None:
    started = time.monotonic()
    endpoints = LocalStack().up()
    migrate(endpoints.database_url)
    asyncio.run(ensure_topics(endpoints.kafka_bootstrap, [TOPIC, DLQ]))
    secret = os.environ.get("METERING_API_JWT_SECRET") or secrets.token_urlsafe(32)
    api_port = _port(8000)
    logs = Path(os.environ.get("METERING_STACK_DIR", ".stack")) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    shared = {**endpoints.as_env(), "METERING_EVENTS_TOPIC": TOPIC, "METERING_DLQ_TOPIC": DLQ}
    ingest_port, projector_port, api_metrics_port = _port(9101), _port(9102), _port(9103)
    ingest_env = {**shared, "METERING_INGEST_METRICS_PORT": str(ingest_port)}
    projector_env = {**shared, "METERING_PROJECTOR_METRICS_PORT": str(projector_port)}
    api_env = {
        **shared,
        "METERING_API_JWT_SECRET": secret,
        "METERING_API_METRICS_PORT": str(api_metrics_port),
    }
    services = [
        ServiceProcess(["ingest", "run"], ingest_env, ingest_port, logs),
        ServiceProcess(["projector", "run"], projector_env, projector_port, logs),
        ServiceProcess(["api", "run", "--port", str(api_port)], api_env, api_port, logs),
    ]
    try:
        for service in services:
            service.start()
        sent = asyncio.run(_send_traffic(endpoints.kafka_bootstrap, organizations, runs))
        deadline = time.monotonic() + 300
        while not asyncio.run(_caught_up(endpoints.database_url)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the projector did not catch up; see {logs}")
            time.sleep(0.5)
        ports = (api_port, api_metrics_port, ingest_port, projector_port)
        _print_ready(ports, secret, sent, time.monotonic() - started, logs)
        if not exit_when_ready:
            _wait_for_interrupt()
    finally:
        for service in reversed(services):
            service.stop()
        console.print("services stopped; the stack stays up (`make stack-down`)")


def _print_ready(
    ports: tuple[int, int, int, int], secret: str, sent: int, seconds: float, logs: Path
) -> None:
    port, api_metrics, ingest, projector = ports
    base = f"http://127.0.0.1:{port}"
    token = sign("org-001", secret, ttl_s=7 * 86400)
    operator = sign(None, secret, operator=True, ttl_s=7 * 86400)
    console.print(
        f"[green bold]ready[/green bold] in {seconds:.0f} s: "
        f"{sent:,} demo events ingested and projected"
    )
    console.print(f"  API:      {base}   (OpenAPI: {base}/docs)")
    console.print(
        f"  metrics:  api :{api_metrics}/metrics, ingest :{ingest}/metrics,"
        f" projector :{projector}/metrics (loopback only)"
    )
    console.print(f"  logs:     {logs}")
    console.print(f"  token for org-001:  {token}", soft_wrap=True)
    console.print(f"  operator token:     {operator}", soft_wrap=True)
    console.print("  try:")
    for path in (
        "usage",
        "usage/daily",
        "usage/apps",
        "scenarios",
        "scenarios/scn-1/runs?limit=5",
        "runs?kind=ai_agent&limit=5",
        "notifications",
    ):
        console.print(
            f"    curl -s -H 'Authorization: Bearer {token}' "
            f"{base}/v1/organizations/org-001/{path}",
            soft_wrap=True,
            highlight=False,
        )
    console.print("Ctrl-C stops the services.")


def _wait_for_interrupt() -> None:
    stop = False

    def interrupted(*_: object) -> None:
        nonlocal stop
        stop = True

    # Both set explicitly: a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    while not stop:
        time.sleep(0.5)
