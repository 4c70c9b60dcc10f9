-- Cutting and reading the batch held in projector_batch (see batch.sql).

-- cut_at_second_subscription --
-- Subscription events change how later events are counted (their period, their
-- day's time zone). A batch therefore holds at most one of them, at its start,
-- so that every event sees exactly the subscriptions that precede it, however
-- the history is cut into batches (a rebuild must equal the live models).
DELETE FROM projector_batch b
USING (
    SELECT transaction_id, position FROM projector_batch
    WHERE type LIKE 'com.metering.subscription.%'
      AND (transaction_id, position) > (
          SELECT transaction_id, position FROM projector_batch
          ORDER BY transaction_id, position LIMIT 1)
    ORDER BY transaction_id, position LIMIT 1
) cut
WHERE (b.transaction_id, b.position) >= (cut.transaction_id, cut.position);

-- batch_end --
-- The last event of the batch in commit order: the checkpoint once it is applied.
SELECT transaction_id, position FROM projector_batch
ORDER BY transaction_id DESC, position DESC LIMIT 1;

-- batch_ages --
-- For each event of the batch, seconds since its own time and since it was stored.
SELECT extract(epoch FROM clock_timestamp() - time)::float8 AS since_time,
       extract(epoch FROM clock_timestamp() - recorded_at)::float8 AS since_stored
FROM projector_batch;
