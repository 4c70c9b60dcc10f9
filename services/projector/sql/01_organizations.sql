-- organizations: plan and time zone from subscription events, auto-purchase
-- settings from their own events; the latest event of each kind wins.

-- organization_plans --
INSERT INTO organizations AS o (organization_id, plan, plan_credits)
SELECT DISTINCT ON (organization_id)
       organization_id, data->>'plan', (data->>'plan_credits')::numeric
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.period_started.%'
   OR type LIKE 'com.metering.subscription.plan_changed.%'
ORDER BY organization_id, position DESC
ON CONFLICT (organization_id) DO UPDATE
SET plan = excluded.plan, plan_credits = excluded.plan_credits;

-- organization_timezones --
INSERT INTO organizations AS o (organization_id, timezone)
SELECT DISTINCT ON (organization_id) organization_id, data->>'timezone'
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.period_started.%' AND data->>'timezone' IS NOT NULL
ORDER BY organization_id, position DESC
ON CONFLICT (organization_id) DO UPDATE SET timezone = excluded.timezone;

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
