-- credit_purchases --
-- Every purchase of the batch, listed by its own purchased_at: the API gives a
-- period those made in it, the same ones its extra_credits count (credit_events.sql).
INSERT INTO credit_purchases (organization_id, purchased_at, event_source, event_id, credits,
                              purchase, threshold_credits, remaining_credits)
SELECT organization_id, (data->>'purchased_at')::timestamptz, source, id,
       (data->>'credits')::numeric, data->>'purchase',
       (data->>'threshold_credits')::numeric, (data->>'remaining_credits')::numeric
FROM projector_batch
WHERE type LIKE 'com.metering.credits.purchased.%'
ON CONFLICT DO NOTHING;
