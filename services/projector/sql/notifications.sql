-- Customer notifications for this batch's organizations, decided after the read
-- models (and the auto-purchases) are updated: each threshold fires once when
-- crossed while armed, and is armed again once usage is back under it (credits
-- were added, a budget or the cap was raised). Only running, subscribed periods
-- are watched: never a calendar-month stand-in, whose credits are not known yet.
-- Run by the live projector only; the state and the outbox are never rebuilt.

-- watch_credits --
-- Every event of an organization re-checks its running periods: usage moved, or
-- credits were added (a purchase, a plan change), which re-arms a threshold.
INSERT INTO batch_watch
WITH latest AS (  -- the event time of the latest usage the batch counted in a period
    SELECT organization_id, period_start, max(counted_at) AS counted_at
    FROM batch_usage WHERE sign = 1 GROUP BY organization_id, period_start
)
SELECT p.organization_id, p.period_start, p.period_end, 'credits', '', t.percent,
       p.credits_used, p.plan_credits + p.extra_credits, l.counted_at,
       -- A period without credits is never notified (its scenarios' budgets may be).
       p.plan_credits + p.extra_credits > 0
           AND p.credits_used * 100 >= (p.plan_credits + p.extra_credits) * t.percent,
       p.credits_used * 100 < (p.plan_credits + p.extra_credits) * t.percent
FROM (SELECT DISTINCT organization_id FROM projector_batch) b
JOIN billing_periods p USING (organization_id)
LEFT JOIN latest l USING (organization_id, period_start)
CROSS JOIN (VALUES (75), (90), (100)) t (percent)
WHERE p.period_end > now() AND p.subscribed;

-- watch_budgets --
INSERT INTO batch_watch
WITH latest AS (
    SELECT organization_id, period_start, scenario_id, max(counted_at) AS counted_at
    FROM batch_usage WHERE sign = 1 GROUP BY organization_id, period_start, scenario_id
)
SELECT w.organization_id, w.period_start, w.period_end, 'budget', b.scenario_id, t.percent,
       coalesce(s.credits_used, 0), b.credits_per_period, l.counted_at,
       coalesce(s.credits_used, 0) * 100 >= b.credits_per_period * t.percent,
       coalesce(s.credits_used, 0) * 100 < b.credits_per_period * t.percent
FROM (SELECT DISTINCT organization_id, period_start, period_end FROM batch_watch) w
JOIN scenario_budgets b ON b.organization_id = w.organization_id
LEFT JOIN scenario_period_usage s
       ON s.organization_id = w.organization_id AND s.period_start = w.period_start
      AND s.scenario_id = b.scenario_id
LEFT JOIN latest l
       ON l.organization_id = w.organization_id AND l.period_start = w.period_start
      AND l.scenario_id = b.scenario_id
CROSS JOIN (VALUES (90), (100)) t (percent)
WHERE b.credits_per_period > 0;

-- watch_cap --
-- The cap is reached when a purchase is due and the next pack would pass it; it may
-- fire again once a pack fits under it (the cap was raised).
INSERT INTO batch_watch
SELECT a.organization_id, a.period_start, p.period_end, 'auto_purchase_cap', '', 100,
       a.bought, a.cap, NULL,
       a.enabled AND a.remaining < a.threshold AND a.pack > 0 AND a.bought + a.pack > a.cap,
       a.bought + a.pack <= a.cap
FROM batch_auto_purchase a
JOIN billing_periods p USING (organization_id, period_start);

-- rearm --
UPDATE notification_state s SET armed = true
FROM batch_watch w
WHERE s.organization_id = w.organization_id AND s.period_start = w.period_start
  AND s.kind = w.kind AND s.scenario_id = w.scenario_id AND s.percent = w.percent
  AND NOT s.armed AND w.under;

-- fire --
-- A crossing while armed: one notification, with an id that names what crossed and
-- which crossing it is, and one delivery per webhook of the organization.
WITH fired AS (
    INSERT INTO notification_state AS s
        (organization_id, period_start, kind, scenario_id, percent, armed, crossings)
    SELECT organization_id, period_start, kind, scenario_id, percent, false, 1
    FROM batch_watch WHERE over
    ON CONFLICT (organization_id, period_start, kind, scenario_id, percent) DO UPDATE
    SET armed = false, crossings = s.crossings + 1
    WHERE s.armed
    RETURNING organization_id, period_start, kind, scenario_id, percent, crossings
), decided AS (
    SELECT f.*, w.period_end, w.used, w.total, clock_timestamp() AS decided_at,
           coalesce(w.crossed_at, clock_timestamp()) AS crossed_at
    FROM fired f JOIN batch_watch w USING (organization_id, period_start, kind, scenario_id, percent)
), notified AS (
    INSERT INTO notification_outbox (event_id, organization_id, type, data, decided_at)
    SELECT concat_ws(':', d.kind, d.organization_id,
                     to_char(d.period_start AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"'),
                     nullif(d.scenario_id, ''), d.percent, d.crossings),
           d.organization_id,
           CASE d.kind WHEN 'auto_purchase_cap' THEN 'com.metering.credits.auto_purchase_cap_reached.v1'
                       ELSE 'com.metering.credits.threshold_crossed.v1' END,
           CASE d.kind WHEN 'auto_purchase_cap' THEN jsonb_build_object(
               'organization_id', d.organization_id,
               'period_start', to_char(d.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'period_end', to_char(d.period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'cap_credits', trim_scale(d.total)::text,
               'bought_credits', trim_scale(d.used)::text,
               'reached_at', to_char(d.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
           ELSE jsonb_strip_nulls(jsonb_build_object(
               'organization_id', d.organization_id,
               'period_start', to_char(d.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'period_end', to_char(d.period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'scope', CASE d.kind WHEN 'budget' THEN 'scenario' ELSE 'organization' END,
               'scenario_id', nullif(d.scenario_id, ''),
               'threshold_percent', d.percent,
               'used_credits', trim_scale(d.used)::text,
               'total_credits', trim_scale(d.total)::text,
               'crossing', d.crossings,
               'crossed_at', to_char(d.crossed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
           END,
           d.decided_at
    FROM decided d
    RETURNING event_id, organization_id, decided_at
), delivering AS (
    INSERT INTO webhook_deliveries
        (event_id, endpoint_id, organization_id, created_at, next_attempt_at)
    SELECT n.event_id, e.endpoint_id, n.organization_id, n.decided_at, n.decided_at
    FROM notified n
    JOIN webhook_endpoints e ON e.organization_id = n.organization_id AND e.removed_at IS NULL
)
SELECT count(*) FROM notified;
