-- After re-settling: places that every event has left are gone, so the read
-- models hold what a projection of the same events in any order would hold.
-- Only places a settled event was taken from are looked at.

-- drop_emptied_periods --
-- A calendar-month stand-in whose usage moved to the real period.
DELETE FROM billing_periods p
USING (SELECT DISTINCT organization_id, period_start FROM batch_usage WHERE settled) t
WHERE p.organization_id = t.organization_id AND p.period_start = t.period_start
  AND NOT p.subscribed AND p.credits_used = 0 AND p.extra_credits = 0 AND p.operations = 0;

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
       WHERE settled AND is_execution) t
WHERE s.organization_id = t.organization_id AND s.period_start = t.period_start
  AND s.scenario_id = t.scenario_id AND s.module_id = t.module_id AND s.executions = 0;
