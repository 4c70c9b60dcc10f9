-- Reading the batch held in projector_batch (see batch_tables.sql).

-- clear --
-- Empty every batch table before a batch. The tables empty themselves at commit, but
-- batches applied one after another inside one transaction (a rebuild's swap catching
-- up) would otherwise see the previous batch's rows again.
DELETE FROM projector_batch; DELETE FROM batch_usage; DELETE FROM batch_auto_purchase; DELETE FROM batch_watch;
DELETE FROM batch_new_runs; DELETE FROM settle_windows; DELETE FROM settled_events;
DELETE FROM credit_events; DELETE FROM batch_scope; DELETE FROM batch_unprojected;

-- scope --
-- $1, $2: the checkpoint the read models stand at (batch_tables.sql, batch_scope).
INSERT INTO batch_scope VALUES ($1::text::xid8, $2);

-- unprojected --
-- Quarantined events not replayed, and the live projection's drops.
INSERT INTO batch_unprojected
SELECT position FROM projector_quarantine WHERE released_how IS DISTINCT FROM 'replayed'
UNION
SELECT position FROM public.projector_quarantine WHERE released_how = 'dropped';

-- leave_out_dropped --
-- A rebuild meets the events an operator dropped: they stay out.
DELETE FROM projector_batch b USING public.projector_quarantine d
WHERE b.position = d.position AND d.released_how = 'dropped';

-- hold_reaching_archives --
-- Events that reach back to a month archived out of the store (services/archive.py)
-- could need its events (a re-settled window, a correction and the event it corrects):
-- they wait in quarantine until it is restored, and the batch goes on without them.
-- An event reaches back to the earliest time it is counted at or re-settles from.
WITH reaching AS (
    SELECT b.* FROM projector_batch b
    WHERE EXISTS (SELECT 1 FROM public.event_archives WHERE restored_at IS NULL)  -- else: no scan
      AND least(b.time,
                date_trunc('month', (b.data->>'period_start')::timestamptz, 'UTC'),
                (b.data->>'corrects_time')::timestamptz,
                (b.data->>'purchased_at')::timestamptz)
            <= (SELECT max(reaches_until) FROM public.event_archives WHERE restored_at IS NULL)
), held AS (
    INSERT INTO projector_quarantine
        (position, organization_id, source, id, type, sqlstate, error)
    SELECT position, organization_id, source, id, type, 'MA001',
           'reaches back to an archived month of the event store: restore it'
           ' (metering archive restore), then replay'
    FROM reaching
    ON CONFLICT (position) DO NOTHING
)
DELETE FROM projector_batch b USING reaching r WHERE b.position = r.position;

-- defines_periods --
-- Whether the batch holds a period_started: only then is anything re-settled.
SELECT EXISTS (
    SELECT 1 FROM projector_batch
    WHERE type LIKE 'com.metering.subscription.period_started.%'
);

-- batch_events --
-- How many events the batch projected (a rebuild's count; it measures no ages).
SELECT count(*) FROM projector_batch;

-- batch_ages --
-- For each event of the batch, seconds since its own time and since it was stored.
SELECT extract(epoch FROM clock_timestamp() - time)::float8 AS since_time,
       extract(epoch FROM clock_timestamp() - recorded_at)::float8 AS since_stored
FROM projector_batch;

-- mark_changed --
-- The organizations whose read models this transaction changed (the batch's) get its
-- id as their version: the API's ETags (services/query_api/freshness.py). Live only:
-- a rebuild's swap marks every organization at once (rebuild.sql).
INSERT INTO public.organization_versions AS v (organization_id, version)
SELECT DISTINCT organization_id, pg_current_xact_id()::text::bigint FROM projector_batch
ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version;
