-- Reading the batch held in projector_batch (see batch_tables.sql).

-- clear --
-- Empty every batch table before a batch. The tables empty themselves at commit, but
-- batches applied one after another inside one transaction (a rebuild's swap catching
-- up) would otherwise see the previous batch's rows again.
DELETE FROM projector_batch; DELETE FROM batch_usage; DELETE FROM batch_auto_purchase;
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
