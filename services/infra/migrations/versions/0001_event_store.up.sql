-- The event store: the source of truth. Append-only; every read model is
-- derived from it and can be rebuilt from position 0.
CREATE TABLE events (
    -- Allocated at insert, visible at commit: concurrent writers can make a
    -- lower position visible after a higher one, so readers track
    -- transaction_id as well (see the projector).
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    source          text NOT NULL,
    id              text NOT NULL,
    type            text NOT NULL,
    organization_id text NOT NULL,          -- the CloudEvent subject
    time            timestamptz NOT NULL,   -- when it happened, not when it arrived
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    data            jsonb NOT NULL,         -- the payload, upcast to the newest version
    payload_sha256  bytea NOT NULL,         -- tells a redelivery from a conflicting reuse of an id
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint,
    CONSTRAINT events_dedup_key UNIQUE (source, id)
);
CREATE INDEX events_by_transaction ON events (transaction_id, position);
CREATE INDEX events_by_organization ON events (organization_id, time);

-- Everything that did not become an event, with the reason: nothing is
-- silently dropped (correctness rule 2).
CREATE TABLE rejected_events (
    rejection_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rejected_at     timestamptz NOT NULL DEFAULT now(),
    reason_code     text NOT NULL,
    reason          text NOT NULL,
    source          text,
    id              text,
    type            text,
    organization_id text,
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint,
    kafka_key       bytea,
    kafka_headers   jsonb,
    raw             bytea,
    -- A redelivered Kafka record is recorded once.
    CONSTRAINT rejected_events_record UNIQUE (kafka_topic, kafka_partition, kafka_offset, reason_code)
);
CREATE INDEX rejected_events_by_time ON rejected_events (rejected_at);
CREATE INDEX rejected_events_by_event ON rejected_events (source, id);

-- Tracking records: each projection's position, moved in the same transaction
-- as the read models it updates.
CREATE TABLE projection_checkpoints (
    projection      text PRIMARY KEY,
    transaction_id  xid8 NOT NULL DEFAULT '0'::xid8,
    position        bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
