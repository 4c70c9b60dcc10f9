-- run_modules --
-- run_modules: credits per module within a run (module executions only).
INSERT INTO run_modules AS m (organization_id, run_id, module_id, app, action, credits_used,
                              operations, executions, errors)
SELECT organization_id, run_id, module_id, min(app), min(action), sum(credits_used),
       sum(operations), count(*), count(*) FILTER (WHERE status = 'error')
FROM batch_usage
WHERE is_execution AND NOT settled
GROUP BY organization_id, run_id, module_id
ON CONFLICT (organization_id, run_id, module_id) DO UPDATE
SET credits_used = m.credits_used + excluded.credits_used,
    operations = m.operations + excluded.operations,
    executions = m.executions + excluded.executions,
    errors = m.errors + excluded.errors;

-- module_executions --
-- module_executions: the run's log, one row per module execution.
INSERT INTO module_executions (organization_id, run_id, started_at, event_position, module_id,
                               app, action, status, operations, credits, finished_at,
                               event_source, event_id)
SELECT u.organization_id, u.run_id, u.started_at, u.position, u.module_id, u.app, u.action,
       u.status, u.operations, u.credits_used, u.finished_at, u.source, u.id
FROM batch_usage u
WHERE u.is_execution AND NOT u.settled;

-- runs_from_usage --
-- runs: credits from module events (and run-level adjustments) even when run
-- events are late or missing; module_count from run_modules above.
WITH totals AS (
    SELECT organization_id, run_id, min(scenario_id) AS scenario_id,
           sum(credits_used) AS credits_used, sum(operations) AS operations,
           count(*) FILTER (WHERE is_execution) AS executions,
           count(*) FILTER (WHERE status = 'error') AS errors,
           min(counted_at) AS first_event_at
    FROM batch_usage
    WHERE run_id IS NOT NULL AND NOT settled
    GROUP BY organization_id, run_id
), upserted AS (
    INSERT INTO runs AS r (organization_id, run_id, scenario_id, credits_used, operations,
                           module_count, executions, errors, first_event_at)
    SELECT t.organization_id, t.run_id, t.scenario_id, t.credits_used, t.operations,
           (SELECT count(*) FROM run_modules m
            WHERE m.organization_id = t.organization_id AND m.run_id = t.run_id),
           t.executions, t.errors, t.first_event_at
    FROM totals t
    ON CONFLICT (organization_id, run_id) DO UPDATE
    SET credits_used = r.credits_used + excluded.credits_used,
        operations = r.operations + excluded.operations,
        module_count = excluded.module_count,
        executions = r.executions + excluded.executions,
        errors = r.errors + excluded.errors,
        first_event_at = least(r.first_event_at, excluded.first_event_at)
    RETURNING organization_id, run_id, (xmax = 0) AS created
)
INSERT INTO batch_new_runs
SELECT u.organization_id, u.run_id, t.scenario_id, t.first_event_at
FROM upserted u JOIN totals t USING (organization_id, run_id)
WHERE u.created;

-- runs_from_run_events --
-- runs: status, trigger and times from run events; a finish beats a start
-- whatever order they arrive in.
WITH upserted AS (
INSERT INTO runs AS r (organization_id, run_id, scenario_id, status, trigger, started_at,
                       finished_at, duration_ms)
SELECT DISTINCT ON (organization_id, data->>'run_id')
       organization_id, data->>'run_id', data->>'scenario_id',
       CASE WHEN type LIKE 'com.metering.scenario_run.finished.%' THEN data->>'status'
            ELSE 'running' END,
       data->>'trigger', (data->>'started_at')::timestamptz,
       (data->>'finished_at')::timestamptz, (data->>'duration_ms')::bigint
FROM projector_batch
WHERE type LIKE 'com.metering.scenario_run.%'
ORDER BY organization_id, data->>'run_id',
         (type LIKE 'com.metering.scenario_run.finished.%') DESC, position DESC
ON CONFLICT (organization_id, run_id) DO UPDATE
SET status = CASE WHEN excluded.status = 'running' AND r.finished_at IS NOT NULL THEN r.status
                  ELSE excluded.status END,
    trigger = coalesce(excluded.trigger, r.trigger),
    started_at = coalesce(excluded.started_at, r.started_at),
    finished_at = coalesce(excluded.finished_at, r.finished_at),
    duration_ms = coalesce(excluded.duration_ms, r.duration_ms)
RETURNING organization_id, run_id, scenario_id, started_at, (xmax = 0) AS created
)
INSERT INTO batch_new_runs
SELECT organization_id, run_id, scenario_id, started_at FROM upserted WHERE created;
