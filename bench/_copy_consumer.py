"""The peer: the plain Python consumer a team would write instead of our ingest.

confluent-kafka (librdkafka) batches, each copied with psycopg COPY into a
temporary table and inserted with `ON CONFLICT (source, id) DO NOTHING` into a
table with that one unique key; offsets are committed after the transaction. It
checks nothing: no contract, no conflict detection (a second payload under a
stored id is silently dropped), no dead letters, no canonical form. Run as a
process by bench/peers.py:

    python -m bench._copy_consumer BOOTSTRAP TOPIC GROUP DATABASE_URL RECORDS
"""

from __future__ import annotations

import json
import resource
import sys
import time

import psycopg
from confluent_kafka import Consumer

TABLE = """
CREATE TABLE IF NOT EXISTS peer_events (
    source text NOT NULL, id text NOT NULL, type text NOT NULL, subject text NOT NULL,
    time timestamptz NOT NULL, data jsonb NOT NULL, kafka_partition integer,
    kafka_offset bigint, PRIMARY KEY (source, id))
"""
STAGE = """
CREATE TEMP TABLE stage (source text, id text, type text, subject text, time timestamptz,
                         data jsonb, kafka_partition integer, kafka_offset bigint)
ON COMMIT DELETE ROWS
"""
INSERT = "INSERT INTO peer_events SELECT * FROM stage ON CONFLICT (source, id) DO NOTHING"


def main(bootstrap: str, topic: str, group: str, database: str, records: int) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    started: float | None = None
    with psycopg.connect(database) as conn:
        conn.execute(TABLE)
        conn.execute(STAGE)
        conn.commit()
        while seen < records:
            batch = consumer.consume(5000, timeout=0.2)
            if not batch:
                continue
            started = started or time.perf_counter()
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy("COPY stage FROM STDIN") as copy:
                    for message in batch:
                        event = json.loads(message.value() or b"null")
                        copy.write_row(
                            (
                                event["source"],
                                event["id"],
                                event["type"],
                                event["subject"],
                                event["time"],
                                json.dumps(event["data"]),
                                message.partition(),
                                message.offset(),
                            )
                        )
                cursor.execute(INSERT)
            consumer.commit(asynchronous=False)
            seen += len(batch)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"records": seen, "seconds": elapsed, "peak_rss_mb": peak_kb / 1024}))


if __name__ == "__main__":
    bootstrap, topic, group, database, records = sys.argv[1:6]
    main(bootstrap, topic, group, database, int(records))
