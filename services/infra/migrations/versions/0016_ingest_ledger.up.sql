-- What ingest received from each Kafka partition: every batch's runs of consecutive
-- offsets, written in the transaction that stores how each of their records ended
-- (events, rejected_events, ingest_duplicates). Reconciliation (services/query_api/
-- reconciliation.py) proves from these that nothing received was lost and no offset
-- was skipped.
CREATE TABLE ingest_ranges (
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    first_offset    bigint NOT NULL,
    last_offset     bigint NOT NULL,
    recorded_at     timestamp with time zone NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition, first_offset, last_offset),
    CHECK (first_offset <= last_offset)
);
CREATE INDEX ingest_ranges_by_time ON ingest_ranges (recorded_at);

-- Records that were exact copies of a stored event: the one outcome no other table keeps.
CREATE TABLE ingest_duplicates (
    kafka_topic     text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    source          text NOT NULL,
    id              text NOT NULL,
    recorded_at     timestamp with time zone NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);

-- A stored event by the record that brought it: reconciliation's lookup.
CREATE INDEX events_by_record ON events (kafka_topic, kafka_partition, kafka_offset);
