-- Events that move credits, and the billing period and day each counts in.
-- Module executions and corrections move credits used; purchases move extra
-- credits. An event counts at its own time (a correction: the time of the event
-- it corrects; a purchase: its purchased_at, however late it is sent).

-- extract --
-- What each event moves; its period and day are chosen by attribute.
INSERT INTO credit_events
SELECT b.position, b.source, b.id, b.organization_id, d->>'scenario_id', d->>'run_id',
       d->>'module_id', d->>'app', d->>'action', d->>'status',
       CASE WHEN b.type LIKE 'com.metering.credits.purchased.%' THEN 0
            ELSE (d->>'credits')::numeric END,
       CASE WHEN b.type LIKE 'com.metering.credits.purchased.%' THEN (d->>'credits')::numeric
            ELSE 0 END,
       coalesce((d->>'operations')::bigint, 0),
       CASE WHEN b.type LIKE 'com.metering.credits.adjusted.%' THEN (d->>'corrects_time')::timestamptz
            WHEN b.type LIKE 'com.metering.credits.purchased.%' THEN (d->>'purchased_at')::timestamptz
            ELSE b.time END,
       (d->>'started_at')::timestamptz, (d->>'finished_at')::timestamptz,
       b.type LIKE 'com.metering.module_execution.completed.%',
       b.settled
FROM (
    SELECT position, source, id, type, organization_id, time, data AS d, false AS settled
    FROM projector_batch
    UNION ALL
    SELECT position, source, id, type, organization_id, time, data, true FROM settled_events
) b
WHERE b.type LIKE 'com.metering.module_execution.completed.%'
   OR b.type LIKE 'com.metering.credits.adjusted.%'
   OR b.type LIKE 'com.metering.credits.purchased.%';

-- attribute --
-- $1: the sign (-1 takes an attribution back, 1 gives one); $2: settled events
-- (true) or the batch's own (false). The period is the subscribed period that
-- holds the counted time (the latest start wins); without one, the calendar
-- month in UTC, clipped by the subscribed periods on either side so that no two
-- periods overlap. The day is the local date in that period's time zone (UTC
-- for a calendar-month stand-in).
INSERT INTO batch_usage
SELECT c.position, c.source, c.id, c.organization_id, c.scenario_id, c.run_id, c.module_id,
       c.app, c.action, c.status, c.credits_used * $1, c.extra_credits * $1,
       c.operations * $1, c.counted_at, c.started_at, c.finished_at, c.is_execution,
       (c.counted_at AT TIME ZONE coalesce(p.timezone, 'UTC'))::date,
       coalesce(p.period_start, greatest(
           date_trunc('month', c.counted_at, 'UTC'),
           (SELECT max(bp.period_end) FROM billing_periods bp
            WHERE bp.organization_id = c.organization_id AND bp.subscribed
              AND bp.period_end <= c.counted_at))),
       coalesce(p.period_end, least(
           date_trunc('month', c.counted_at, 'UTC') + interval '1 month',
           (SELECT min(bp.period_start) FROM billing_periods bp
            WHERE bp.organization_id = c.organization_id AND bp.subscribed
              AND bp.period_start > c.counted_at))),
       $1::integer, $2::boolean
FROM credit_events c
LEFT JOIN LATERAL (
    SELECT bp.period_start, bp.period_end, bp.timezone FROM billing_periods bp
    WHERE bp.organization_id = c.organization_id AND bp.subscribed
      AND bp.period_start <= c.counted_at AND c.counted_at < bp.period_end
    ORDER BY bp.period_start DESC LIMIT 1
) p ON true
WHERE c.settled = $2::boolean;

-- cancel_unmoved --
-- A settled event whose period and day did not change is neither taken back nor
-- given again.
DELETE FROM batch_usage u
USING batch_usage v
WHERE u.settled AND v.settled AND u.position = v.position AND u.sign = -v.sign
  AND u.period_start = v.period_start AND u.period_end = v.period_end AND u.day = v.day;
