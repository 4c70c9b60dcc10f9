-- The current schema, as the migrations (services/infra/migrations/versions/)
-- leave it: what `pg_dump --schema-only` prints, tidied and grouped along the
-- data flow. Read it to know the tables; change them with a new migration.
-- tests/integration/test_schema.py checks that the two agree.

------------------------------------------------------------------------------
-- The event store (written by ingest, read through services/event_store.py)
------------------------------------------------------------------------------

-- Append-only source of truth; position is allocated at insert and visible at
-- commit, so readers go in (transaction_id, position) order. Partitioned by the
-- UTC month of recorded_at (events_YYYY_MM, made ahead by
-- ensure_event_partitions); a month that has ended never changes and can be
-- archived (services/archive.py).
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    source          text NOT NULL,
    id              text NOT NULL,
    type            text NOT NULL,
    organization_id text NOT NULL,
    time            timestamp with time zone NOT NULL,
    recorded_at     timestamp with time zone NOT NULL DEFAULT now(),
    data            jsonb NOT NULL,
    payload_sha256  bytea NOT NULL,
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint,
    CONSTRAINT events_pkey PRIMARY KEY (position, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE INDEX events_by_transaction ON events (transaction_id, position);
CREATE INDEX events_by_organization ON events (organization_id, time);
-- Re-settling reads an organization's purchases and corrections (few) by this.
CREATE INDEX events_credit_changes ON events (organization_id)
    WHERE type LIKE 'com.metering.credits.%';
-- The corrections of an event, found when it arrives after them.
CREATE INDEX events_corrections ON events
    ((data->'corrects_event'->>'source'), (data->'corrects_event'->>'id'))
    WHERE type LIKE 'com.metering.credits.adjusted.%';
-- Rows of a month that has no partition yet wait here rather than fail.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- (source, id) of every event ever stored, unique across months and kept when a
-- month is archived; claimed by every insert into events, in its statement.
CREATE TABLE event_keys (
    source          text NOT NULL,
    id              text NOT NULL,
    position        bigint NOT NULL,
    payload_sha256  bytea NOT NULL,
    CONSTRAINT event_keys_pkey PRIMARY KEY (source, id)
);

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

SELECT ensure_event_partitions(now() + interval '2 months');

-- Every record that did not become an event, with its reason.
CREATE TABLE rejected_events (
    rejection_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rejected_at     timestamp with time zone NOT NULL DEFAULT now(),
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
    CONSTRAINT rejected_events_record
        UNIQUE (kafka_topic, kafka_partition, kafka_offset, reason_code)
);
CREATE INDEX rejected_events_by_time ON rejected_events (rejected_at);
CREATE INDEX rejected_events_by_event ON rejected_events (source, id);

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

-- Tracking records: each projection's place in the store.
CREATE TABLE projection_checkpoints (
    projection     text PRIMARY KEY,
    transaction_id xid8 NOT NULL DEFAULT '0'::xid8,
    position       bigint NOT NULL DEFAULT 0,
    updated_at     timestamp with time zone NOT NULL DEFAULT now(),
    -- The last time the shard found no event past its checkpoint: every event stored
    -- before it is in the read models (the API's as_of; NULL until it first catches up).
    caught_up_at   timestamp with time zone
);

-- The transaction that last changed an organization's read models (a live batch, a
-- replay, a rebuild's swap): the API's ETags name an answer by it, so a dashboard
-- polling one organization gets 304s while others' events are projected. No row: not
-- changed since this table was made.
CREATE TABLE organization_versions (
    organization_id text PRIMARY KEY,
    version         bigint NOT NULL
);

-- Events the usage projection's SQL refused, parked with the error while the
-- projector goes on; held until replayed or dropped (`metering quarantine`).
CREATE TABLE projector_quarantine (
    position        bigint PRIMARY KEY,
    organization_id text NOT NULL,
    source          text NOT NULL,
    id              text NOT NULL,
    type            text NOT NULL,
    sqlstate        text NOT NULL,
    error           text NOT NULL,
    quarantined_at  timestamp with time zone NOT NULL DEFAULT now(),
    released_at     timestamp with time zone,
    released_how    text,  -- replayed | dropped
    release_reason  text,
    CHECK (released_how IN ('replayed', 'dropped')),
    CHECK ((released_at IS NULL) = (released_how IS NULL))
);

------------------------------------------------------------------------------
-- Read models (written by services/projector/sql/, read by the query API);
-- every key starts with organization_id; credits are numeric(30,6)
------------------------------------------------------------------------------

CREATE TABLE organizations (
    organization_id         text PRIMARY KEY,
    timezone                text NOT NULL DEFAULT 'UTC'::text,
    plan                    text,
    plan_credits            numeric(30,6),
    auto_purchase_enabled   boolean NOT NULL DEFAULT false,
    auto_purchase_threshold numeric(30,6),
    auto_purchase_pack      numeric(30,6),
    plan_since              timestamp with time zone,  -- plan and zone: latest by
    timezone_since          timestamp with time zone,  -- effective time, not arrival
    plan_by                 text,  -- ties (and auto-purchase settings): the latest
    timezone_by             text,  -- event time, then the greatest source:id, as
    auto_purchase_by        text,  -- one sortable key
    -- The most credits bought automatically in one billing period; NULL: the plan's.
    auto_purchase_cap       numeric(30,6)
);

CREATE TABLE billing_periods (
    organization_id text NOT NULL,
    period_start    timestamp with time zone NOT NULL,
    period_end      timestamp with time zone NOT NULL,
    plan            text,
    plan_credits    numeric(30,6) NOT NULL DEFAULT 0,
    extra_credits   numeric(30,6) NOT NULL DEFAULT 0,
    credits_used    numeric(30,6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    subscribed      boolean NOT NULL DEFAULT false,  -- false: a calendar-month stand-in
    timezone        text,                            -- counts the period's days
    subscribed_plan    text,            -- the subscription's own plan; plan and
    subscribed_credits numeric(30,6),   -- plan_credits above are the plan in effect
    subscribed_end  timestamp with time zone,  -- the subscription's own end; period_end
                                               -- is clipped by the next subscribed start
    defined_at      timestamp with time zone,  -- the period_started that won: latest
    defined_by      text,                      -- time, then source:id
    PRIMARY KEY (organization_id, period_start),
    CHECK (period_end > period_start)
);

-- Plan changes by effective time; the latest inside a period sets its plan.
CREATE TABLE plan_changes (
    organization_id text NOT NULL,
    effective_at    timestamp with time zone NOT NULL,
    plan            text NOT NULL,
    plan_credits    numeric(30,6) NOT NULL,
    PRIMARY KEY (organization_id, effective_at)
);

CREATE TABLE organization_daily_usage (
    organization_id text NOT NULL,
    day             date NOT NULL,
    credits_used    numeric(30,6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, day)
);

CREATE TABLE scenario_usage (
    organization_id text NOT NULL,
    scenario_id     text NOT NULL,
    credits_used    numeric(30,6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    runs            bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, scenario_id)
);

CREATE TABLE scenario_period_usage (
    organization_id text NOT NULL,
    period_start    timestamp with time zone NOT NULL,
    scenario_id     text NOT NULL,
    credits_used    numeric(30,6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, period_start, scenario_id)
);
CREATE INDEX scenario_period_usage_largest_first
    ON scenario_period_usage (organization_id, period_start, credits_used DESC, scenario_id);

CREATE TABLE scenario_daily_usage (
    organization_id text NOT NULL,
    scenario_id     text NOT NULL,
    day             date NOT NULL,
    credits_used    numeric(30,6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, scenario_id, day)
);

CREATE TABLE scenario_module_period_usage (
    organization_id text NOT NULL,
    period_start    timestamp with time zone NOT NULL,
    scenario_id     text NOT NULL,
    module_id       text NOT NULL,
    app             text,            -- NULL while only corrections name the module
    action          text,
    credits_used    numeric(30,6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    executions      bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, period_start, scenario_id, module_id)
);

CREATE TABLE runs (
    organization_id text NOT NULL,
    run_id          text NOT NULL,
    scenario_id     text NOT NULL,
    status          text,
    trigger         text,
    started_at      timestamp with time zone,
    finished_at     timestamp with time zone,
    duration_ms     bigint,
    credits_used    numeric(30,6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    module_count    integer NOT NULL DEFAULT 0,
    executions      bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    first_event_at  timestamp with time zone,
    -- What ran, from the run's own events: 'scenario' or 'ai_agent' (NULL until one arrives).
    kind            text,
    PRIMARY KEY (organization_id, run_id)
);
-- A run's place in a list is its start: the earliest of its run events' started_at
-- and its first counted event. It only moves earlier as late events arrive, so a
-- cursor page (newest first) never skips a run (REVIEW D6).
CREATE INDEX runs_history ON runs
    (organization_id, scenario_id, (least(started_at, first_event_at)) DESC, run_id DESC);
CREATE INDEX runs_by_time ON runs
    (organization_id, (least(started_at, first_event_at)) DESC, run_id DESC);

-- Every extra-credit purchase, listed by the time it was made: a period's are those
-- whose purchased_at is in it, as its extra_credits are (services/projector/sql).
-- An automatic purchase keeps the crossing that decided it.
CREATE TABLE credit_purchases (
    organization_id   text NOT NULL,
    purchased_at      timestamp with time zone NOT NULL,
    event_source      text NOT NULL,
    event_id          text NOT NULL,
    credits           numeric(30,6) NOT NULL,
    purchase          text NOT NULL,  -- manual | automatic
    threshold_credits numeric(30,6),
    remaining_credits numeric(30,6),
    PRIMARY KEY (organization_id, purchased_at, event_source, event_id)
);

CREATE TABLE run_modules (
    organization_id text NOT NULL,
    run_id          text NOT NULL,
    module_id       text NOT NULL,
    app             text,            -- NULL while only corrections name the module
    action          text,
    credits_used    numeric(30,6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    executions      bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, run_id, module_id)
);

-- Each scenario's budget (com.metering.scenario.budget_set): credits per billing
-- period, NULL for none. The event with the latest set_by (its set_at, source and id)
-- wins, whatever the order the events arrive or are projected in.
CREATE TABLE scenario_budgets (
    organization_id    text NOT NULL,
    scenario_id        text NOT NULL,
    credits_per_period numeric(30,6),
    set_by             text NOT NULL,
    PRIMARY KEY (organization_id, scenario_id)
);

CREATE TABLE module_executions (
    organization_id text NOT NULL,
    run_id          text NOT NULL,
    started_at      timestamp with time zone NOT NULL,
    event_position  bigint NOT NULL,
    module_id       text NOT NULL,
    app             text NOT NULL,
    action          text NOT NULL,
    status          text NOT NULL,
    operations      bigint NOT NULL,
    credits         numeric(30,6) NOT NULL,
    finished_at     timestamp with time zone NOT NULL,
    event_source    text NOT NULL,
    event_id        text NOT NULL,
    PRIMARY KEY (organization_id, run_id, started_at, event_position)
);

------------------------------------------------------------------------------
-- Auto-purchase decisions (live projector only; never rebuilt)
------------------------------------------------------------------------------

CREATE TABLE auto_purchase_state (
    organization_id text NOT NULL,
    period_start    timestamp with time zone NOT NULL,
    armed           boolean NOT NULL DEFAULT true,
    purchases       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, period_start)
);

CREATE TABLE auto_purchase_outbox (
    event_id        text PRIMARY KEY,
    organization_id text NOT NULL,
    period_start    timestamp with time zone NOT NULL,
    credits         numeric(30,6) NOT NULL,
    purchased_at    timestamp with time zone NOT NULL,
    sent_at         timestamp with time zone,
    threshold_credits numeric(30,6),
    remaining_credits numeric(30,6)
);
CREATE INDEX auto_purchase_outbox_unsent ON auto_purchase_outbox (purchased_at)
    WHERE sent_at IS NULL;
-- The credits already bought automatically in a period: the cap's count.
CREATE INDEX auto_purchase_outbox_by_period ON auto_purchase_outbox (organization_id, period_start);

------------------------------------------------------------------------------
-- Customer notifications and their webhooks (live projector only; never rebuilt)
------------------------------------------------------------------------------

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
