-- batch_usage --
-- Every event of the batch that moves credits, with the billing period and day
-- it counts in: module executions and adjustments (credits used) and
-- purchases (extra credits). An event counts in the period and day of its own
-- time (an adjustment: of the event it corrects; a purchase: its purchased_at,
-- however late it is sent), whenever it arrives.
-- Organizations without subscription events get calendar months in UTC.
INSERT INTO batch_usage
SELECT b.position, b.source, b.id, b.organization_id, u.scenario_id, u.run_id, u.module_id, u.app, u.action,
       u.status, u.credits_used, u.extra_credits, u.operations, u.counted_at, u.started_at,
       u.finished_at, u.is_execution,
       (u.counted_at AT TIME ZONE coalesce(o.timezone, 'UTC'))::date AS day,
       coalesce(p.period_start, date_trunc('month', u.counted_at, 'UTC')) AS period_start,
       coalesce(p.period_end, date_trunc('month', u.counted_at, 'UTC') + interval '1 month') AS period_end
FROM projector_batch b
CROSS JOIN LATERAL (
    SELECT d->>'scenario_id' AS scenario_id, d->>'run_id' AS run_id, d->>'module_id' AS module_id,
           d->>'app' AS app, d->>'action' AS action, d->>'status' AS status,
           CASE WHEN b.type LIKE 'com.metering.credits.purchased.%' THEN 0
                ELSE (d->>'credits')::numeric END AS credits_used,
           CASE WHEN b.type LIKE 'com.metering.credits.purchased.%' THEN (d->>'credits')::numeric
                ELSE 0 END AS extra_credits,
           coalesce((d->>'operations')::bigint, 0) AS operations,
           CASE WHEN b.type LIKE 'com.metering.credits.adjusted.%' THEN (d->>'corrects_time')::timestamptz
                WHEN b.type LIKE 'com.metering.credits.purchased.%' THEN (d->>'purchased_at')::timestamptz
                ELSE b.time END AS counted_at,
           (d->>'started_at')::timestamptz AS started_at,
           (d->>'finished_at')::timestamptz AS finished_at,
           b.type LIKE 'com.metering.module_execution.completed.%' AS is_execution
    FROM (SELECT b.data AS d) AS x
) u
LEFT JOIN organizations o ON o.organization_id = b.organization_id
LEFT JOIN LATERAL (
    SELECT bp.period_start, bp.period_end FROM billing_periods bp
    WHERE bp.organization_id = b.organization_id
      AND bp.period_start <= u.counted_at AND u.counted_at < bp.period_end
    ORDER BY bp.period_start DESC LIMIT 1
) p ON true
WHERE b.type LIKE 'com.metering.module_execution.completed.%'
   OR b.type LIKE 'com.metering.credits.adjusted.%'
   OR b.type LIKE 'com.metering.credits.purchased.%';
