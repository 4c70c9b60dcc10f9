-- Reading the batch held in projector_batch (see batch_tables.sql).

-- defines_periods --
-- Whether the batch holds a period_started: only then is anything re-settled.
SELECT EXISTS (
    SELECT 1 FROM projector_batch
    WHERE type LIKE 'com.metering.subscription.period_started.%'
);

-- batch_end --
-- The last event of the batch in commit order: the checkpoint once it is applied.
SELECT transaction_id, position FROM projector_batch
ORDER BY transaction_id DESC, position DESC LIMIT 1;

-- batch_ages --
-- For each event of the batch, seconds since its own time and since it was stored.
SELECT extract(epoch FROM clock_timestamp() - time)::float8 AS since_time,
       extract(epoch FROM clock_timestamp() - recorded_at)::float8 AS since_stored
FROM projector_batch;
