-- scenario_usage --
-- scenario_usage: all-time credits and runs per scenario; a run counts once,
-- when its first event (module or run event) is projected, in the scenario
-- 04_runs.sql gives it. (Its last run is read from runs: queries.py, SCENARIO.)
WITH usage AS (
    SELECT organization_id, scenario_id, sum(credits_used) AS credits_used,
           sum(operations) AS operations
    FROM batch_usage WHERE scenario_id IS NOT NULL AND (NOT settled OR moved)
    GROUP BY organization_id, scenario_id
), new_runs AS (
    SELECT organization_id, scenario_id, sum(runs) AS runs
    FROM batch_new_runs GROUP BY organization_id, scenario_id
)
INSERT INTO scenario_usage AS s (organization_id, scenario_id, credits_used, operations, runs)
SELECT organization_id, scenario_id, coalesce(u.credits_used, 0), coalesce(u.operations, 0),
       coalesce(n.runs, 0)
FROM usage u FULL JOIN new_runs n USING (organization_id, scenario_id)
ON CONFLICT (organization_id, scenario_id) DO UPDATE
SET credits_used = s.credits_used + excluded.credits_used,
    operations = s.operations + excluded.operations,
    runs = s.runs + excluded.runs;

-- scenario_period_usage --
-- scenario_period_usage: the scenarios list of a billing period.
INSERT INTO scenario_period_usage AS s (organization_id, period_start, scenario_id,
                                        credits_used, operations)
SELECT organization_id, period_start, scenario_id, sum(credits_used), sum(operations)
FROM batch_usage
WHERE scenario_id IS NOT NULL
GROUP BY organization_id, period_start, scenario_id
ON CONFLICT (organization_id, period_start, scenario_id) DO UPDATE
SET credits_used = s.credits_used + excluded.credits_used,
    operations = s.operations + excluded.operations;

-- scenario_daily_usage --
-- scenario_daily_usage
INSERT INTO scenario_daily_usage AS s (organization_id, scenario_id, day, credits_used,
                                       operations)
SELECT organization_id, scenario_id, day, sum(credits_used), sum(operations)
FROM batch_usage
WHERE scenario_id IS NOT NULL
GROUP BY organization_id, scenario_id, day
ON CONFLICT (organization_id, scenario_id, day) DO UPDATE
SET credits_used = s.credits_used + excluded.credits_used,
    operations = s.operations + excluded.operations;

-- scenario_module_period_usage --
-- scenario_module_period_usage: credits per module across the period's runs
-- (executions and module-level corrections).
INSERT INTO scenario_module_period_usage AS s (organization_id, period_start, scenario_id,
                                               module_id, app, action, credits_used,
                                               operations, executions, errors)
SELECT organization_id, period_start, scenario_id, module_id, min(app), min(action),
       sum(credits_used), sum(operations), coalesce(sum(sign) FILTER (WHERE is_execution), 0),
       coalesce(sum(sign) FILTER (WHERE status = 'error'), 0)
FROM batch_usage
WHERE module_id IS NOT NULL AND scenario_id IS NOT NULL
GROUP BY organization_id, period_start, scenario_id, module_id
ON CONFLICT (organization_id, period_start, scenario_id, module_id) DO UPDATE
SET app = least(s.app, excluded.app),
    action = least(s.action, excluded.action),
    credits_used = s.credits_used + excluded.credits_used,
    operations = s.operations + excluded.operations,
    executions = s.executions + excluded.executions,
    errors = s.errors + excluded.errors;

-- scenario_budgets --
-- A scenario's budget: the budget_set event with the greatest (set_at, source, id)
-- wins, in whatever order they come; one without credits_per_period removes it.
INSERT INTO scenario_budgets AS b (organization_id, scenario_id, credits_per_period, set_by)
SELECT DISTINCT ON (organization_id, data->>'scenario_id')
       organization_id, data->>'scenario_id', (data->>'credits_per_period')::numeric,
       to_char((data->>'set_at')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US ')
           || source || ':' || id
FROM projector_batch
WHERE type LIKE 'com.metering.scenario.budget_set.%'
ORDER BY organization_id, data->>'scenario_id', 4 DESC
ON CONFLICT (organization_id, scenario_id) DO UPDATE
SET credits_per_period = excluded.credits_per_period, set_by = excluded.set_by
WHERE excluded.set_by > b.set_by;
