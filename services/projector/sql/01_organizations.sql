-- organizations: plan and time zone, the latest by effective time (a period's
-- start, a plan change's effective_at), never by arrival: a re-sent or
-- backfilled old event does not overwrite today's. Auto-purchase settings: the
-- latest by event time. Ties go to the latest event time, then the greatest
-- source:id (the *_by columns hold that key), so no arrival order decides.

-- organization_plans --
INSERT INTO organizations AS o (organization_id, plan, plan_credits, plan_since, plan_by)
SELECT DISTINCT ON (organization_id)
       organization_id, data->>'plan', (data->>'plan_credits')::numeric,
       coalesce((data->>'effective_at')::timestamptz, (data->>'period_start')::timestamptz),
       to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US ') || source || ':' || id
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.period_started.%'
   OR type LIKE 'com.metering.subscription.plan_changed.%'
ORDER BY organization_id,
         coalesce((data->>'effective_at')::timestamptz, (data->>'period_start')::timestamptz) DESC,
         5 DESC
ON CONFLICT (organization_id) DO UPDATE
SET plan = excluded.plan, plan_credits = excluded.plan_credits, plan_since = excluded.plan_since,
    plan_by = excluded.plan_by
WHERE o.plan_since IS NULL
   OR (excluded.plan_since, excluded.plan_by) > (o.plan_since, coalesce(o.plan_by, ''));

-- organization_timezones --
INSERT INTO organizations AS o (organization_id, timezone, timezone_since, timezone_by)
SELECT DISTINCT ON (organization_id)
       organization_id, data->>'timezone', (data->>'period_start')::timestamptz,
       to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US ') || source || ':' || id
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.period_started.%' AND data->>'timezone' IS NOT NULL
ORDER BY organization_id, (data->>'period_start')::timestamptz DESC, 4 DESC
ON CONFLICT (organization_id) DO UPDATE
SET timezone = excluded.timezone, timezone_since = excluded.timezone_since,
    timezone_by = excluded.timezone_by
WHERE o.timezone_since IS NULL
   OR (excluded.timezone_since, excluded.timezone_by)
      > (o.timezone_since, coalesce(o.timezone_by, ''));

-- organization_auto_purchase --
INSERT INTO organizations AS o (organization_id, auto_purchase_enabled,
                                auto_purchase_threshold, auto_purchase_pack, auto_purchase_by,
                                auto_purchase_cap)
SELECT DISTINCT ON (organization_id)
       organization_id, (data->>'enabled')::boolean, (data->>'threshold_credits')::numeric,
       (data->>'pack_credits')::numeric,
       to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US ') || source || ':' || id,
       (data->>'max_credits_per_period')::numeric
FROM projector_batch
WHERE type LIKE 'com.metering.credits.auto_purchase_configured.%'
ORDER BY organization_id, 5 DESC
ON CONFLICT (organization_id) DO UPDATE
SET auto_purchase_enabled = excluded.auto_purchase_enabled,
    auto_purchase_threshold = excluded.auto_purchase_threshold,
    auto_purchase_pack = excluded.auto_purchase_pack,
    auto_purchase_by = excluded.auto_purchase_by,
    auto_purchase_cap = excluded.auto_purchase_cap
WHERE o.auto_purchase_by IS NULL OR excluded.auto_purchase_by > o.auto_purchase_by;
