-- After re-settling: places that every event has left are gone, so the read
-- models hold what a projection of the same events in any order would hold.
-- Only places a settled event was taken from are looked at.

-- drop_emptied_periods --
-- A calendar-month stand-in whose usage moved to the real period.
DELETE FROM billing_periods p
USING (SELECT DISTINCT organization_id, period_start FROM batch_usage WHERE settled) t
WHERE p.organization_id = t.organization_id AND p.period_start = t.period_start
  AND NOT p.subscribed AND p.credits_used = 0 AND p.extra_credits = 0 AND p.operations = 0;

-- standin_ends --
-- A stand-in ends at the end of its UTC month or at the next subscribed
-- period's start, whichever is first (as attribute in credit_events.sql gives
-- it), in the organizations whose periods this batch defined.
UPDATE billing_periods p
SET period_end = least(date_trunc('month', p.period_start, 'UTC') + interval '1 month', (
    SELECT min(q.period_start) FROM billing_periods q
    WHERE q.organization_id = p.organization_id AND q.subscribed
      AND q.period_start > p.period_start))
WHERE NOT p.subscribed
  AND p.organization_id IN (SELECT organization_id FROM settle_windows);

-- drop_emptied_days --
DELETE FROM organization_daily_usage d
USING (SELECT DISTINCT organization_id, day FROM batch_usage WHERE settled) t
WHERE d.organization_id = t.organization_id AND d.day = t.day
  AND d.credits_used = 0 AND d.operations = 0;

-- drop_emptied_scenario_periods --
DELETE FROM scenario_period_usage s
USING (SELECT DISTINCT organization_id, period_start, scenario_id FROM batch_usage
       WHERE settled AND scenario_id IS NOT NULL) t
WHERE s.organization_id = t.organization_id AND s.period_start = t.period_start
  AND s.scenario_id = t.scenario_id AND s.credits_used = 0 AND s.operations = 0;

-- drop_emptied_scenario_days --
DELETE FROM scenario_daily_usage s
USING (SELECT DISTINCT organization_id, scenario_id, day FROM batch_usage
       WHERE settled AND scenario_id IS NOT NULL) t
WHERE s.organization_id = t.organization_id AND s.scenario_id = t.scenario_id
  AND s.day = t.day AND s.credits_used = 0 AND s.operations = 0;

-- drop_emptied_scenario_modules --
DELETE FROM scenario_module_period_usage s
USING (SELECT DISTINCT organization_id, period_start, scenario_id, module_id FROM batch_usage
       WHERE settled AND module_id IS NOT NULL AND scenario_id IS NOT NULL) t
WHERE s.organization_id = t.organization_id AND s.period_start = t.period_start
  AND s.scenario_id = t.scenario_id AND s.module_id = t.module_id AND s.executions = 0
  AND s.credits_used = 0 AND s.operations = 0;

-- drop_emptied_run_modules --
-- A module that only a moved correction's own copy named.
DELETE FROM run_modules m
USING (SELECT DISTINCT organization_id, run_id, module_id FROM batch_usage
       WHERE moved AND sign = -1 AND run_id IS NOT NULL AND module_id IS NOT NULL) t
WHERE m.organization_id = t.organization_id AND m.run_id = t.run_id
  AND m.module_id = t.module_id AND m.executions = 0 AND m.credits_used = 0
  AND m.operations = 0;

-- recount_modules --
-- The module count of a run a moved correction left.
UPDATE runs r SET module_count = (
    SELECT count(*) FROM run_modules m
    WHERE m.organization_id = r.organization_id AND m.run_id = r.run_id)
FROM (SELECT DISTINCT organization_id, run_id FROM batch_usage
      WHERE moved AND sign = -1 AND run_id IS NOT NULL) t
WHERE r.organization_id = t.organization_id AND r.run_id = t.run_id;

-- drop_emptied_runs --
-- A run that only a moved correction's own copy named: gone, and no longer
-- counted in its scenario.
WITH dropped AS (
    DELETE FROM runs r
    USING (SELECT DISTINCT organization_id, run_id FROM batch_usage
           WHERE moved AND sign = -1 AND run_id IS NOT NULL) t
    WHERE r.organization_id = t.organization_id AND r.run_id = t.run_id
      AND r.executions = 0 AND r.credits_used = 0 AND r.operations = 0 AND r.status IS NULL
    RETURNING r.organization_id, r.scenario_id
)
UPDATE scenario_usage s SET runs = s.runs - d.runs
FROM (SELECT organization_id, scenario_id, count(*) AS runs FROM dropped GROUP BY 1, 2) d
WHERE s.organization_id = d.organization_id AND s.scenario_id = d.scenario_id;

-- drop_emptied_scenarios --
-- A scenario that only a moved correction's own copy named.
DELETE FROM scenario_usage s
USING (SELECT DISTINCT organization_id, scenario_id FROM batch_usage
       WHERE moved AND sign = -1 AND scenario_id IS NOT NULL) t
WHERE s.organization_id = t.organization_id AND s.scenario_id = t.scenario_id
  AND s.credits_used = 0 AND s.operations = 0 AND s.runs = 0;
