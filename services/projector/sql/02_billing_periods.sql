-- billing_periods_from_subscriptions --
-- billing_periods: defined by subscription events (the latest for a start wins).
-- A calendar-month stand-in with the same start becomes the real period.
INSERT INTO billing_periods AS p (organization_id, period_start, period_end, plan, plan_credits,
                                  subscribed, timezone)
SELECT DISTINCT ON (organization_id, (data->>'period_start')::timestamptz)
       organization_id, (data->>'period_start')::timestamptz, (data->>'period_end')::timestamptz,
       data->>'plan', (data->>'plan_credits')::numeric, true, coalesce(data->>'timezone', 'UTC')
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.period_started.%'
ORDER BY organization_id, (data->>'period_start')::timestamptz, position DESC
ON CONFLICT (organization_id, period_start) DO UPDATE
SET period_end = excluded.period_end, plan = excluded.plan, plan_credits = excluded.plan_credits,
    subscribed = true, timezone = excluded.timezone;
