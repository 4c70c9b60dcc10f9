-- Auto-purchase decisions for the periods this batch touched that are still
-- running, and only for a subscribed period: never for a calendar-month
-- stand-in, whose credits are not known yet (REVIEW B2). Run by the live
-- projector only, after the read models are updated.

-- clear_candidates --
TRUNCATE batch_auto_purchase;

-- collect_candidates --
INSERT INTO batch_auto_purchase
SELECT p.organization_id, p.period_start, o.auto_purchase_enabled,
       o.auto_purchase_threshold, o.auto_purchase_pack,
       p.plan_credits + p.extra_credits - p.credits_used AS remaining,
       -- The cap: at most this many credits bought automatically in a period (by
       -- default its plan credits, Make's rule), counted from the decisions already
       -- made, so a runaway scenario cannot buy packs without end.
       coalesce(o.auto_purchase_cap, p.plan_credits) AS cap,
       (SELECT coalesce(sum(x.credits), 0) FROM auto_purchase_outbox x
        WHERE x.organization_id = p.organization_id AND x.period_start = p.period_start)
           AS bought
FROM (SELECT DISTINCT organization_id, period_start FROM batch_usage) t
JOIN billing_periods p USING (organization_id, period_start)
JOIN organizations o USING (organization_id)
WHERE p.period_end > now() AND p.subscribed;

-- rearm --
-- Credits back at or above the threshold: armed again for the next crossing.
UPDATE auto_purchase_state s SET armed = true
FROM batch_auto_purchase b
WHERE s.organization_id = b.organization_id AND s.period_start = b.period_start
  AND NOT s.armed AND b.remaining >= b.threshold;

-- fire --
-- A crossing below the threshold while armed: one purchase, with an id that
-- names the organization, the period and the crossing, and the crossing itself
-- (the threshold, and the credits remaining when it was decided).
WITH fired AS (
    INSERT INTO auto_purchase_state AS s (organization_id, period_start, armed, purchases)
    SELECT organization_id, period_start, false, 1
    FROM batch_auto_purchase
    WHERE enabled AND remaining < threshold AND pack > 0 AND bought + pack <= cap
    ON CONFLICT (organization_id, period_start) DO UPDATE
    SET armed = false, purchases = s.purchases + 1
    WHERE s.armed
    RETURNING organization_id, period_start, purchases
)
INSERT INTO auto_purchase_outbox (event_id, organization_id, period_start, credits, purchased_at,
                                  threshold_credits, remaining_credits)
SELECT 'auto-purchase:' || f.organization_id || ':'
       || to_char(f.period_start AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"') || ':'
       || f.purchases,
       f.organization_id, f.period_start, b.pack, date_trunc('second', now()),
       b.threshold, b.remaining
FROM fired f JOIN batch_auto_purchase b USING (organization_id, period_start);
