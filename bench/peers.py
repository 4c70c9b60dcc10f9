"""Ingest beside the plain Python consumer a team would deploy instead, in one run.

One backlog in Kafka (structured CloudEvents, 5 % exact duplicates, 2
partitions) is stored twice, each time into a fresh database and with a new
consumer group: by our ingest service (every check of the contract, conflict
detection, dead letters, the full event store with its indexes) and by the peer
(`bench/_copy_consumer.py`: confluent-kafka + psycopg COPY + ON CONFLICT DO
NOTHING into a table with one unique key, nothing checked). Both are timed
the same way: from starting the process to the last unique event stored. With
BENCH_PEERS_ROUNDS > 1 they take turns (ours, peer, ours, peer...), and the
median of each is reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from rich.console import Console

from bench.ingest import accepted, fresh_database, rss_mb, send_records, structured
from deploy.stack.local import Endpoints, LocalStack
from deploy.stack.processes import free_port, port_answers
from services.infra.topics import ensure_topics

RECORDS = int(os.environ.get("BENCH_PEERS_EVENTS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_PEERS_ROUNDS", "1"))
DUPLICATE_SHARE = 0.05
console = Console()


def backlog() -> tuple[list[int], int]:
    """Which event each record carries: a new one, or 5 % of the time an earlier one again."""
    rng = random.Random(42)  # noqa: S311  (a reproducible backlog, not a secret)
    order: list[int] = []
    unique = 0
    for _ in range(RECORDS):
        if unique and rng.random() < DUPLICATE_SHARE:
            order.append(rng.randrange(unique))
        else:
            order.append(unique)
            unique += 1
    return order, unique


def run_ours(endpoints: Endpoints, topic: str, unique: int) -> dict[str, float]:
    database = fresh_database(endpoints.database_url)
    port = free_port()
    env = {
        **os.environ,
        "METERING_DATABASE_URL": database,
        "METERING_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "METERING_EVENTS_TOPIC": topic,
        "METERING_DLQ_TOPIC": f"{topic}.dlq",
        "METERING_INGEST_GROUP_ID": f"ours-{uuid.uuid4().hex[:8]}",
        "METERING_INGEST_METRICS_PORT": str(port),
    }
    log = Path(tempfile.mkdtemp()) / "ingest.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ingest", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        while not port_answers(port) or accepted(port) < unique:
            if process.poll() is not None:
                raise RuntimeError(f"ingest exited: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        peak = rss_mb(process.pid, "VmHWM")
    finally:
        process.terminate()
        process.wait(30)
    return {"events_per_s": RECORDS / elapsed, "seconds": elapsed, "peak_rss_mb": peak}


def run_peer(endpoints: Endpoints, topic: str, unique: int) -> dict[str, float]:
    database = fresh_database(endpoints.database_url)
    started = time.perf_counter()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "bench._copy_consumer", endpoints.kafka_bootstrap, topic),
            *(f"peer-{uuid.uuid4().hex[:8]}", database, str(RECORDS)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT count(*) FROM peer_events").fetchone()
    if stored is None or stored[0] != unique:
        raise RuntimeError(f"the peer stored {stored} events, not {unique}")
    return {
        "events_per_s": RECORDS / elapsed,
        "seconds": elapsed,
        "peak_rss_mb": reported["peak_rss_mb"],
    }


def main() -> dict[str, float]:
    endpoints = LocalStack().up()
    topic = f"bench.peers.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(endpoints.kafka_bootstrap, [topic], partitions=2))
    order, unique = backlog()
    console.print(f"producing {RECORDS:,} records ({unique:,} unique events) to {topic} ...")
    asyncio.run(send_records(endpoints.kafka_bootstrap, topic, structured(order)))
    ours: list[dict[str, float]] = []
    peer: list[dict[str, float]] = []
    for round_ in range(1, ROUNDS + 1):
        ours.append(run_ours(endpoints, topic, unique))
        console.print(f"  round {round_}: ours {ours[-1]['events_per_s']:,.0f} records/s")
        peer.append(run_peer(endpoints, topic, unique))
        console.print(f"  round {round_}: peer {peer[-1]['events_per_s']:,.0f} records/s")
    ours_rate = statistics.median(r["events_per_s"] for r in ours)
    peer_rate = statistics.median(r["events_per_s"] for r in peer)
    figures = {
        "records": RECORDS,
        "unique_events": unique,
        "rounds": ROUNDS,
        "ours_events_per_s": round(ours_rate),
        "peer_copy_consumer_events_per_s": round(peer_rate),
        "ratio_ingest": round(ours_rate / peer_rate, 3),
        "ours_peak_rss_mb": round(max(r["peak_rss_mb"] for r in ours), 1),
        "peer_peak_rss_mb": round(max(r["peak_rss_mb"] for r in peer), 1),
    }
    console.print(
        f"  [bold]ours {ours_rate:,.0f} vs plain COPY consumer {peer_rate:,.0f} records/s: "
        f"{figures['ratio_ingest']}x[/bold] (ours checks the contract, conflicts, dead letters; "
        f"the peer checks nothing)"
    )
    return figures
