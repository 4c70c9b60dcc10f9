"""Prometheus metrics of the projector."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("projector_events_total", "Events applied to the read models", ["projection"])
BATCH_SECONDS = Histogram(
    "projector_batch_seconds",
    "Time to apply one batch, checkpoint included",
    ["projection"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_FRESHNESS_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.8,
    1,
    1.5,
    2,
    3,
    5,
    10,
    30,
    60,
    300,
    3600,
)
FRESHNESS = Histogram(
    "projector_freshness_seconds",
    "From an event's own time to its being visible in the read models (late events: late)",
    ["projection"],
    buckets=_FRESHNESS_BUCKETS,
)
STORE_TO_VISIBLE = Histogram(
    "projector_store_to_visible_seconds",
    "From an event's arrival in the store to its being visible in the read models",
    ["projection"],
    buckets=_FRESHNESS_BUCKETS,
)
LAG_POSITIONS = Gauge(
    "projector_lag_positions",
    "Positions between the store's head and the checkpoint",
    ["projection"],
)
LAG_SECONDS = Gauge(
    "projector_lag_seconds", "Age of the oldest event not yet projected", ["projection"]
)
LAST_PROGRESS = Gauge(
    "projector_last_progress_timestamp_seconds",
    "When the projection last applied a batch or found nothing to do",
    ["projection"],
)
ACTIVE = Gauge(
    "projector_active", "1 while this instance holds the projection's lock", ["projection"]
)
QUARANTINED = Counter(
    "projector_quarantined_events_total",
    "Events the projection refused, parked in quarantine (the projector went on)",
    ["projection"],
)
HELD = Gauge(
    "projector_quarantine_held_events",
    "Events held in quarantine now: neither replayed nor dropped",
    ["projection"],
)
PURCHASE_SEND_ERRORS = Counter(
    "projector_auto_purchase_send_errors_total",
    "Failed attempts to send auto-purchases from the outbox (each retried with backoff)",
)
NOTIFICATIONS_SENT = Counter(
    "projector_notifications_sent_total",
    "Customer notifications (threshold crossings) sent to the notifications topic",
)
NOTIFICATION_SEND_ERRORS = Counter(
    "projector_notification_send_errors_total",
    "Failed attempts to send notifications from the outbox, and rows that are not valid"
    " events (each retried; an invalid row stays unsent)",
)
WEBHOOK_ATTEMPTS = Counter(
    "projector_webhook_attempts_total",
    "Webhook delivery attempts, by outcome: delivered, retry (the endpoint failed; tried"
    " again later), failed (no success within the retry window, or the endpoint removed)",
    ["outcome"],
)
WEBHOOK_ERRORS = Counter(
    "projector_webhook_errors_total",
    "Failures of the webhook deliverer itself (database, bugs), each retried with backoff",
)
PURGED = Counter(
    "projector_quarantine_purged_total",
    "Replayed quarantine records purged past their retention (METERING_RETENTION_)",
)
NOTIFICATIONS_PURGED = Counter(
    "projector_notifications_purged_total",
    "Sent notifications purged past their retention, with their webhook deliveries' log"
    " (METERING_RETENTION_NOTIFICATIONS_DAYS)",
)
