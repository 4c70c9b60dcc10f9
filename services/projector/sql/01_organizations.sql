-- organizations: plan and time zone, the latest by effective time (a period's
-- start, a plan change's effective_at), never by arrival: a re-sent or
-- backfilled old event does not overwrite today's. Auto-purchase settings from
-- their own events, the latest in the batch winning.

-- organization_plans --
INSERT INTO organizations AS o (organization_id, plan, plan_credits, plan_since)
SELECT DISTINCT ON (organization_id)
       organization_id, data->>'plan', (data->>'plan_credits')::numeric,
       coalesce((data->>'effective_at')::timestamptz, (data->>'period_start')::timestamptz)
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.period_started.%'
   OR type LIKE 'com.metering.subscription.plan_changed.%'
ORDER BY organization_id,
         coalesce((data->>'effective_at')::timestamptz, (data->>'period_start')::timestamptz) DESC,
         position DESC
ON CONFLICT (organization_id) DO UPDATE
SET plan = excluded.plan, plan_credits = excluded.plan_credits, plan_since = excluded.plan_since
WHERE o.plan_since IS NULL OR excluded.plan_since >= o.plan_since;

-- organization_timezones --
INSERT INTO organizations AS o (organization_id, timezone, timezone_since)
SELECT DISTINCT ON (organization_id)
       organization_id, data->>'timezone', (data->>'period_start')::timestamptz
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.period_started.%' AND data->>'timezone' IS NOT NULL
ORDER BY organization_id, (data->>'period_start')::timestamptz DESC, position DESC
ON CONFLICT (organization_id) DO UPDATE
SET timezone = excluded.timezone, timezone_since = excluded.timezone_since
WHERE o.timezone_since IS NULL OR excluded.timezone_since >= o.timezone_since;

-- organization_auto_purchase --
INSERT INTO organizations AS o (organization_id, auto_purchase_enabled,
                                auto_purchase_threshold, auto_purchase_pack)
SELECT DISTINCT ON (organization_id)
       organization_id, (data->>'enabled')::boolean, (data->>'threshold_credits')::numeric,
       (data->>'pack_credits')::numeric
FROM projector_batch
WHERE type LIKE 'com.metering.credits.auto_purchase_configured.%'
ORDER BY organization_id, position DESC
ON CONFLICT (organization_id) DO UPDATE
SET auto_purchase_enabled = excluded.auto_purchase_enabled,
    auto_purchase_threshold = excluded.auto_purchase_threshold,
    auto_purchase_pack = excluded.auto_purchase_pack;
