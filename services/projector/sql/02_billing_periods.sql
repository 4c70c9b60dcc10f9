-- billing_periods_from_subscriptions --
-- billing_periods: defined by subscription events. Of several for one start,
-- the latest by event time wins (then the greatest source:id), whatever order
-- they arrive in. A calendar-month stand-in with the same start becomes the real
-- period. The plan in effect is set again by plans_in_effect below, the end by
-- clip_periods.
INSERT INTO billing_periods AS p (organization_id, period_start, period_end, plan, plan_credits,
                                  subscribed, timezone, subscribed_plan, subscribed_credits,
                                  subscribed_end, defined_at, defined_by)
SELECT DISTINCT ON (organization_id, (data->>'period_start')::timestamptz)
       organization_id, (data->>'period_start')::timestamptz, (data->>'period_end')::timestamptz,
       data->>'plan', (data->>'plan_credits')::numeric, true, coalesce(data->>'timezone', 'UTC'),
       data->>'plan', (data->>'plan_credits')::numeric, (data->>'period_end')::timestamptz,
       time, source || ':' || id
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.period_started.%'
ORDER BY organization_id, (data->>'period_start')::timestamptz, time DESC,
         source || ':' || id DESC
ON CONFLICT (organization_id, period_start) DO UPDATE
SET period_end = excluded.period_end, plan = excluded.plan, plan_credits = excluded.plan_credits,
    subscribed = true, timezone = excluded.timezone, subscribed_plan = excluded.subscribed_plan,
    subscribed_credits = excluded.subscribed_credits, subscribed_end = excluded.subscribed_end,
    defined_at = excluded.defined_at, defined_by = excluded.defined_by
WHERE NOT p.subscribed
   OR (excluded.defined_at, excluded.defined_by) > (p.defined_at, p.defined_by);

-- clip_periods --
-- A subscribed period ends at its own end or at the next subscribed period's
-- start, whichever is first: periods never overlap, and an instant counts in
-- the period with the latest start before it. Organizations this batch defines.
UPDATE billing_periods p
SET period_end = least(p.subscribed_end, (
    SELECT min(q.period_start) FROM billing_periods q
    WHERE q.organization_id = p.organization_id AND q.subscribed
      AND q.period_start > p.period_start))
WHERE p.subscribed
  AND p.organization_id IN (
      SELECT organization_id FROM projector_batch
      WHERE type LIKE 'com.metering.subscription.period_started.%');

-- plan_changes --
-- Every plan change, by its effective time.
INSERT INTO plan_changes AS c (organization_id, effective_at, plan, plan_credits)
SELECT DISTINCT ON (organization_id, (data->>'effective_at')::timestamptz)
       organization_id, (data->>'effective_at')::timestamptz, data->>'plan',
       (data->>'plan_credits')::numeric
FROM projector_batch
WHERE type LIKE 'com.metering.subscription.plan_changed.%'
ORDER BY organization_id, (data->>'effective_at')::timestamptz, position DESC
ON CONFLICT (organization_id, effective_at) DO UPDATE
SET plan = excluded.plan, plan_credits = excluded.plan_credits;

-- plans_in_effect --
-- The plan of a subscribed period is its subscription's, unless a plan change
-- takes effect inside it: then the latest such change's, at once, for the whole
-- period (an upgrade gives the new plan's credits immediately, as Make does; a
-- downgrade the billing system means for the next period carries that
-- period's start as its effective_at). Only organizations this batch touches.
UPDATE billing_periods p
SET (plan, plan_credits) = (
    SELECT coalesce(c.plan, p.subscribed_plan), coalesce(c.plan_credits, p.subscribed_credits)
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT pc.plan, pc.plan_credits FROM plan_changes pc
        WHERE pc.organization_id = p.organization_id
          AND pc.effective_at >= p.period_start AND pc.effective_at < p.period_end
        ORDER BY pc.effective_at DESC LIMIT 1
    ) c ON true
)
WHERE p.subscribed
  AND p.organization_id IN (
      SELECT organization_id FROM projector_batch WHERE type LIKE 'com.metering.subscription.%'
  );
