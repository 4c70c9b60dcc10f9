-- Customer notifications (live projector only; never rebuilt). One row per thing
-- watched in a billing period: an organization's credits at 75, 90 and 100 %, a
-- scenario's budget at 90 and 100 % (scenario_id), the auto-purchase cap (percent
-- 100). It fires once when crossed while armed, and is armed again once usage is
-- back under it (credits were added).
CREATE TABLE notification_state (
    organization_id text NOT NULL,
    period_start    timestamp with time zone NOT NULL,
    kind            text NOT NULL,  -- credits | budget | auto_purchase_cap
    scenario_id     text NOT NULL DEFAULT '',  -- '' unless kind is budget
    percent         integer NOT NULL,
    armed           boolean NOT NULL DEFAULT true,
    crossings       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, period_start, kind, scenario_id, percent)
);

-- Notifications decided in a batch's transaction, sent to Kafka after commit (sent_at).
-- data: the CloudEvent's data, checked against its contract when sent.
CREATE TABLE notification_outbox (
    event_id        text PRIMARY KEY,
    organization_id text NOT NULL,
    type            text NOT NULL,
    data            jsonb NOT NULL,
    decided_at      timestamp with time zone NOT NULL,
    sent_at         timestamp with time zone
);
CREATE INDEX notification_outbox_unsent ON notification_outbox (decided_at)
    WHERE sent_at IS NULL;
CREATE INDEX notification_outbox_by_organization
    ON notification_outbox (organization_id, decided_at);

-- Webhooks an operator registered (`metering webhooks add ORG URL`); the secret signs
-- each delivery as Standard Webhooks says. A removed one keeps its deliveries' log.
CREATE TABLE webhook_endpoints (
    endpoint_id     text PRIMARY KEY,
    organization_id text NOT NULL,
    url             text NOT NULL,
    secret          text NOT NULL,
    created_at      timestamp with time zone NOT NULL DEFAULT now(),
    removed_at      timestamp with time zone
);
CREATE UNIQUE INDEX webhook_endpoints_active ON webhook_endpoints (organization_id, url)
    WHERE removed_at IS NULL;

-- One notification to one endpoint: pending until delivered, or failed once it has been
-- retried for its whole window. next_attempt_at is also a lease while an attempt runs.
CREATE TABLE webhook_deliveries (
    event_id        text NOT NULL REFERENCES notification_outbox,
    endpoint_id     text NOT NULL REFERENCES webhook_endpoints,
    organization_id text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    created_at      timestamp with time zone NOT NULL,
    next_attempt_at timestamp with time zone,
    attempts        integer NOT NULL DEFAULT 0,
    delivered_at    timestamp with time zone,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_organization
    ON webhook_deliveries (organization_id, created_at);

-- Every attempt: what the endpoint answered (status_code) or why none came (error).
CREATE TABLE webhook_attempts (
    event_id        text NOT NULL,
    endpoint_id     text NOT NULL,
    attempt         integer NOT NULL,
    attempted_at    timestamp with time zone NOT NULL,
    duration_ms     integer NOT NULL,
    status_code     integer,
    error           text,
    PRIMARY KEY (event_id, endpoint_id, attempt),
    FOREIGN KEY (event_id, endpoint_id) REFERENCES webhook_deliveries
);
