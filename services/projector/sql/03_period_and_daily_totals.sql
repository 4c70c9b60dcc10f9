-- billing_period_totals --
-- billing_periods: credits used and extra credits bought in each period. A
-- calendar-month stand-in takes the end its latest events were given (it only
-- shrinks, as subscribed periods next to it become known).
INSERT INTO billing_periods AS p (organization_id, period_start, period_end,
                                  credits_used, extra_credits, operations)
SELECT organization_id, period_start, min(period_end), sum(credits_used), sum(extra_credits),
       sum(operations)
FROM batch_usage
GROUP BY organization_id, period_start
ON CONFLICT (organization_id, period_start) DO UPDATE
SET period_end = CASE WHEN p.subscribed THEN p.period_end ELSE excluded.period_end END,
    credits_used = p.credits_used + excluded.credits_used,
    extra_credits = p.extra_credits + excluded.extra_credits,
    operations = p.operations + excluded.operations;

-- organization_daily_usage --
-- organization_daily_usage: the daily usage trend, days in the organization's zone.
INSERT INTO organization_daily_usage AS d (organization_id, day, credits_used, operations)
SELECT organization_id, day, sum(credits_used), sum(operations)
FROM batch_usage
WHERE extra_credits = 0
GROUP BY organization_id, day
ON CONFLICT (organization_id, day) DO UPDATE
SET credits_used = d.credits_used + excluded.credits_used,
    operations = d.operations + excluded.operations;
