"""Prometheus metrics of the ingest service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECEIVED = Counter("ingest_records_received_total", "Kafka records received", ["topic"])
ACCEPTED = Counter("ingest_events_accepted_total", "Events appended to the store", ["type"])
DUPLICATES = Counter(
    "ingest_events_duplicate_total", "Events dropped as duplicates of stored ones", ["type"]
)
REDELIVERED = Counter(
    "ingest_records_redelivered_total",
    "Records Kafka delivered again after they were stored (e.g. after a crash)",
)
CONFLICTS = Counter(
    "ingest_events_conflicting_total",
    "Events whose id is stored with a different payload",
    ["type"],
)
REJECTED = Counter(
    "ingest_records_rejected_total", "Records sent to the dead-letter topic", ["reason"]
)
BATCH_SIZE = Histogram(
    "ingest_batch_size",
    "Records per batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
WRITE_LATENCY = Histogram(
    "ingest_write_seconds",
    "Time to make one batch durable in PostgreSQL",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RETRIES = Counter("ingest_retries_total", "Retries after a server went away", ["server"])
CONSUMER_LAG = Gauge(
    "ingest_consumer_lag", "Records behind the end of the partition", ["topic", "partition"]
)
CONSUMER_OFFSET = Gauge(
    "ingest_consumer_offset",
    "Offset of the next record this consumer reads; with lag and no change, a stuck partition",
    ["topic", "partition"],
)
FAILED_BATCHES = Counter(
    "ingest_failed_batches_total",
    "Batches the store refused as a whole; each was split until the refused records were found",
)
PURGED = Counter(
    "ingest_rejected_purged_total",
    "Rejected records purged from rejected_events past their retention (METERING_RETENTION_)",
)
