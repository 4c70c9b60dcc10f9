-- Auto-purchase decisions are not a read model: they are made once, by the live
-- projector, and never again by a rebuild.

-- Armed while the period's credits left are at or above the threshold; a
-- purchase fires on the crossing below it and disarms until they rise again.
CREATE TABLE auto_purchase_state (
    organization_id text NOT NULL,
    period_start    timestamptz NOT NULL,
    armed           boolean NOT NULL DEFAULT true,
    purchases       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, period_start)
);

-- Purchases decided in the same transaction as the batch that caused them,
-- sent to Kafka afterwards. A purchase sent twice (a crash between sending and
-- marking it sent) has the same id and payload, so ingest counts it once.
CREATE TABLE auto_purchase_outbox (
    event_id        text PRIMARY KEY,
    organization_id text NOT NULL,
    period_start    timestamptz NOT NULL,
    credits         numeric(24, 6) NOT NULL,
    purchased_at    timestamptz NOT NULL,
    sent_at         timestamptz
);
CREATE INDEX auto_purchase_outbox_unsent ON auto_purchase_outbox (purchased_at)
    WHERE sent_at IS NULL;
