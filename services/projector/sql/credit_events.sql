-- Events that move credits, and the billing period and day each counts in.
-- Module executions and corrections move credits used; purchases move extra
-- credits. An event counts at its own time (a purchase: its purchased_at,
-- however late it is sent). A correction counts where the event it corrects
-- is (its time, scenario, run and module) once that event is in the store;
-- until then, where the correction's own copy says (DESIGN rule 8).

-- extract --
-- What each execution and purchase moves; its period and day are chosen by
-- attribute.
INSERT INTO credit_events
SELECT b.position, b.source, b.id, b.organization_id, d->>'scenario_id', d->>'run_id',
       d->>'module_id', d->>'app', d->>'action', d->>'status',
       CASE WHEN b.type LIKE 'com.metering.credits.purchased.%' THEN 0
            ELSE (d->>'credits')::numeric END,
       CASE WHEN b.type LIKE 'com.metering.credits.purchased.%' THEN (d->>'credits')::numeric
            ELSE 0 END,
       coalesce((d->>'operations')::bigint, 0),
       CASE WHEN b.type LIKE 'com.metering.credits.purchased.%'
            THEN (d->>'purchased_at')::timestamptz ELSE b.time END,
       (d->>'started_at')::timestamptz, (d->>'finished_at')::timestamptz,
       b.type LIKE 'com.metering.module_execution.completed.%', b.settled, NULL, NULL, true, false
FROM credit_sources b
WHERE b.type LIKE 'com.metering.module_execution.completed.%'
   OR b.type LIKE 'com.metering.credits.purchased.%';

-- extract_corrections --
-- What each correction moves, and where: a correction of the batch is resolved
-- against what the read models held before the batch (batch_scope) and the
-- batch itself; a settled one against what they held before (as it was counted).
INSERT INTO credit_events
SELECT b.position, b.source, b.id, b.organization_id,
       CASE WHEN t.found THEN t.data->>'scenario_id' ELSE d->>'scenario_id' END,
       CASE WHEN t.found THEN t.data->>'run_id' ELSE d->>'run_id' END,
       CASE WHEN t.found THEN t.data->>'module_id' ELSE d->>'module_id' END,
       NULL, NULL, NULL, (d->>'credits')::numeric, 0, 0,
       CASE WHEN t.found THEN t.time ELSE (d->>'corrects_time')::timestamptz END,
       NULL, NULL, false, b.settled, d->'corrects_event'->>'source', d->'corrects_event'->>'id',
       coalesce(t.found, false), false
FROM credit_sources b
LEFT JOIN LATERAL (
    SELECT true AS found, e.time, e.data
    FROM event_keys k JOIN events e ON e.position = k.position  -- (source, id) is keyed there
    WHERE k.source = b.d->'corrects_event'->>'source' AND k.id = b.d->'corrects_event'->>'id'
      AND e.organization_id = b.organization_id
      AND e.type LIKE 'com.metering.module_execution.completed.%'
      AND ((NOT b.settled AND EXISTS (SELECT 1 FROM projector_batch n
                                      WHERE n.position = e.position))
           OR ((e.transaction_id, e.position) <= (SELECT projected_xid, projected_position FROM batch_scope)
               AND NOT EXISTS (SELECT 1 FROM batch_unprojected u WHERE u.position = e.position)))
) t ON true
WHERE b.type LIKE 'com.metering.credits.adjusted.%';

-- resolve_late --
-- Settled corrections whose corrected event is in this batch: after their old
-- place is taken back (attribute, sign -1), they take the event's place.
UPDATE credit_events c
SET counted_at = e.time, scenario_id = e.data->>'scenario_id', run_id = e.data->>'run_id',
    module_id = e.data->>'module_id', resolved = true, moved = true
FROM projector_batch e
WHERE c.settled AND NOT c.resolved
  AND e.source = c.corrects_source AND e.id = c.corrects_id
  AND e.organization_id = c.organization_id
  AND e.type LIKE 'com.metering.module_execution.completed.%';

-- mark_moved --
-- Their taken-back rows move in the models of a run too.
UPDATE batch_usage u SET moved = true
FROM credit_events c
WHERE u.settled AND c.moved AND c.position = u.position;

-- attribute --
-- $1: the sign (-1 takes an attribution back, 1 gives one); $2: settled events
-- (true) or the batch's own (false). The period is the subscribed period that
-- holds the counted time; without one, the calendar month in UTC, clipped by
-- the subscribed periods on either side, so that no two periods overlap. The
-- day is the local date in that period's time zone (UTC for a calendar-month
-- stand-in).
INSERT INTO batch_usage
SELECT c.position, c.source, c.id, c.organization_id, c.scenario_id, c.run_id, c.module_id,
       c.app, c.action, c.status, c.credits_used * $1, c.extra_credits * $1,
       c.operations * $1, c.counted_at, c.started_at, c.finished_at, c.is_execution,
       (c.counted_at AT TIME ZONE CASE WHEN p.holds THEN p.timezone ELSE 'UTC' END)::date,
       CASE WHEN p.holds THEN p.period_start
            ELSE greatest(date_trunc('month', c.counted_at, 'UTC'), p.period_end) END,
       CASE WHEN p.holds THEN p.period_end
            ELSE least(date_trunc('month', c.counted_at, 'UTC') + interval '1 month',
                       (SELECT min(bp.period_start) FROM billing_periods bp
                        WHERE bp.organization_id = c.organization_id AND bp.subscribed
                          AND bp.period_start > c.counted_at)) END,
       $1::integer, $2::boolean, c.moved, c.resolved
FROM credit_events c
LEFT JOIN LATERAL (
    -- The subscribed period that starts last at or before the counted time: it
    -- holds it, or its end is where the stand-in after it starts (subscribed
    -- periods never overlap).
    SELECT bp.period_start, bp.period_end, bp.timezone, c.counted_at < bp.period_end AS holds
    FROM billing_periods bp
    WHERE bp.organization_id = c.organization_id AND bp.subscribed
      AND bp.period_start <= c.counted_at
    ORDER BY bp.period_start DESC LIMIT 1
) p ON true
WHERE c.settled = $2::boolean;

-- cancel_unmoved --
-- A settled event whose period (its start: the read models' key) and day did
-- not change is neither taken back nor given again. A renewal whose period
-- starts where the stand-in holding its early usage started moves nothing; the
-- stand-in's end is set again in cleanup.sql (standin_ends).
DELETE FROM batch_usage u
USING batch_usage v
WHERE u.settled AND v.settled AND NOT u.moved AND NOT v.moved
  AND u.position = v.position AND u.sign = -v.sign
  AND u.period_start = v.period_start AND u.day = v.day;
