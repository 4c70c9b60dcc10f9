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

ALTER TABLE auto_purchase_outbox
    ADD COLUMN threshold_credits numeric(30,6),
    ADD COLUMN remaining_credits numeric(30,6);

-- The purchases already stored, as the projector would have listed them.
INSERT INTO credit_purchases
SELECT organization_id, (data->>'purchased_at')::timestamptz, source, id,
       (data->>'credits')::numeric, data->>'purchase',
       (data->>'threshold_credits')::numeric, (data->>'remaining_credits')::numeric
FROM events WHERE type LIKE 'com.metering.credits.purchased.%'
ON CONFLICT DO NOTHING;
