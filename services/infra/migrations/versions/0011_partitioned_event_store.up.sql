-- The event store is partitioned by month of recorded_at (when it was stored,
-- in UTC), so its indexes and old months stay apart: appends touch the current
-- month's indexes only, and a month that has ended never changes again and can
-- be archived (services/archive.py). recorded_at, not the event's own time: a
-- late event is stored in the month it arrives, never in an archived one.
--
-- A unique index on a partitioned table must hold the partition key, so
-- (source, id) can no longer be unique in `events` itself. It is unique in
-- `event_keys`, one narrow row per event ever stored, never partitioned and
-- never archived: deduplication holds across months and after a month is
-- archived. Every insert into `events` claims its keys there in the same
-- statement (trigger events_claim_keys), so a second copy of an id fails with a
-- unique violation whoever writes it; the recorder skips known keys first. The
-- payload digest lives there too, so a copy of an archived event is still told
-- apart from a conflicting reuse of its id.

CREATE TABLE event_keys (
    source          text NOT NULL,
    id              text NOT NULL,
    position        bigint NOT NULL,
    payload_sha256  bytea NOT NULL,
    CONSTRAINT event_keys_pkey PRIMARY KEY (source, id)
);

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER SEQUENCE events_position_seq RENAME TO events_unpartitioned_position_seq;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_dedup_key TO events_unpartitioned_dedup;
ALTER INDEX events_by_transaction RENAME TO events_unpartitioned_by_transaction;
ALTER INDEX events_by_organization RENAME TO events_unpartitioned_by_organization;
ALTER INDEX events_credit_changes RENAME TO events_unpartitioned_credit_changes;
ALTER INDEX events_corrections RENAME TO events_unpartitioned_corrections;

CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    source          text NOT NULL,
    id              text NOT NULL,
    type            text NOT NULL,
    organization_id text NOT NULL,
    time            timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    data            jsonb NOT NULL,
    payload_sha256  bytea NOT NULL,
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint,
    CONSTRAINT events_pkey PRIMARY KEY (position, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE INDEX events_by_transaction ON events (transaction_id, position);
CREATE INDEX events_by_organization ON events (organization_id, time);
CREATE INDEX events_credit_changes ON events (organization_id)
    WHERE type LIKE 'com.metering.credits.%';
CREATE INDEX events_corrections ON events
    ((data->'corrects_event'->>'source'), (data->'corrects_event'->>'id'))
    WHERE type LIKE 'com.metering.credits.adjusted.%';

-- Rows of a month that has no partition yet wait here rather than fail;
-- ensure_event_partitions moves them to their month.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Months taken out of the store to files (services/archive.py), and put back.
-- Their keys stay in event_keys. reaches_until is the latest time any of their
-- events is counted at: an event reaching back to it waits in quarantine until
-- the month is restored (projector sql/batch.sql, hold_reaching_archives).
CREATE TABLE event_archives (
    month           text PRIMARY KEY,           -- YYYY-MM, UTC
    events          bigint NOT NULL,
    first_position  bigint,
    last_position   bigint,
    reaches_until   timestamptz,
    file            text NOT NULL,
    file_sha256     text NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now(),
    restored_at     timestamptz
);

CREATE FUNCTION events_claim_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_keys (source, id, position, payload_sha256)
    SELECT source, id, position, payload_sha256 FROM appended;
    RETURN NULL;
END $$;

CREATE TRIGGER events_claim_keys AFTER INSERT ON events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION events_claim_keys();

-- Creates the monthly partitions (events_YYYY_MM, UTC months) from the month of
-- `since` (the current one by default) through the month of `through`, and the
-- partitions of any month whose rows wait in events_default, moving them there. Idempotent; run at migration,
-- when ingest starts and hourly by it. Answers how many partitions it created.
CREATE FUNCTION ensure_event_partitions(through timestamptz, since timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz;
    month_end timestamptz;
    partition_name text;
    created integer := 0;
    months timestamptz[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ensure_event_partitions'));
    SELECT array_agg(m ORDER BY m) INTO months FROM (
        SELECT DISTINCT date_trunc('month', recorded_at, 'UTC') AS m FROM events_default
        UNION
        SELECT generate_series(date_trunc('month', since, 'UTC'),
                               date_trunc('month', through, 'UTC'), interval '1 month')
    ) wanted;
    FOREACH month_start IN ARRAY coalesce(months, '{}') LOOP
        partition_name := 'events_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
        CONTINUE WHEN to_regclass('public.' || partition_name) IS NOT NULL;
        month_end := month_start + interval '1 month';
        IF EXISTS (SELECT 1 FROM events_default
                   WHERE recorded_at >= month_start AND recorded_at < month_end) THEN
            -- Straight into the partition: its keys are already claimed.
            ALTER TABLE events DETACH PARTITION events_default;
            EXECUTE format('CREATE TABLE public.%I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                           partition_name, month_start, month_end);
            EXECUTE format('WITH moved AS (DELETE FROM events_default WHERE recorded_at >= %L'
                           ' AND recorded_at < %L RETURNING *) INSERT INTO public.%I SELECT * FROM moved',
                           month_start, month_end, partition_name);
            ALTER TABLE events ATTACH PARTITION events_default DEFAULT;
        ELSE
            EXECUTE format('CREATE TABLE public.%I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                           partition_name, month_start, month_end);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;

-- Every stored event, into the new table (its default partition, claiming its
-- keys), then to its month.
INSERT INTO events (position, transaction_id, source, id, type, organization_id, time,
                    recorded_at, data, payload_sha256, kafka_topic, kafka_partition,
                    kafka_offset)
OVERRIDING SYSTEM VALUE
SELECT position, transaction_id, source, id, type, organization_id, time, recorded_at, data,
       payload_sha256, kafka_topic, kafka_partition, kafka_offset
FROM events_unpartitioned ORDER BY position;
SELECT setval(pg_get_serial_sequence('events', 'position'),
              coalesce((SELECT max(position) FROM events_unpartitioned), 0) + 1, false);
DROP TABLE events_unpartitioned;
SELECT ensure_event_partitions(now() + interval '2 months');
