-- run_modules --
-- run_modules: credits per module within a run, from module executions and
-- module-level corrections (so that modules add up to their run). app and
-- action are the least named, whatever order the executions come in.
INSERT INTO run_modules AS m (organization_id, run_id, module_id, app, action, credits_used,
                              operations, executions, errors)
SELECT organization_id, run_id, module_id, min(app), min(action), sum(credits_used),
       sum(operations), count(*) FILTER (WHERE is_execution),
       count(*) FILTER (WHERE status = 'error')
FROM batch_usage
WHERE run_id IS NOT NULL AND module_id IS NOT NULL AND (NOT settled OR moved)
GROUP BY organization_id, run_id, module_id
ON CONFLICT (organization_id, run_id, module_id) DO UPDATE
SET app = least(m.app, excluded.app),
    action = least(m.action, excluded.action),
    credits_used = m.credits_used + excluded.credits_used,
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
-- events are late or missing; module_count from run_modules above. A run's
-- scenario is the least named by its executions, run events and resolved
-- corrections; a run known only from corrections' own copies takes the least
-- of theirs until then. A run that changes scenario moves its count.
WITH totals AS (
    SELECT organization_id, run_id,
           coalesce(min(scenario_id) FILTER (WHERE sign = 1 AND resolved),
                    min(scenario_id) FILTER (WHERE sign = 1)) AS scenario_id,
           coalesce(bool_or(sign = 1 AND resolved), false) AS known,
           sum(credits_used) AS credits_used, sum(operations) AS operations,
           count(*) FILTER (WHERE is_execution) AS executions,
           count(*) FILTER (WHERE status = 'error') AS errors,
           min(counted_at) FILTER (WHERE sign = 1 AND resolved) AS first_event_at
    FROM batch_usage
    WHERE run_id IS NOT NULL AND (NOT settled OR moved)
    GROUP BY organization_id, run_id
), before AS (
    SELECT r.organization_id, r.run_id, r.scenario_id,
           r.executions > 0 OR r.status IS NOT NULL AS known
    FROM runs r JOIN totals t USING (organization_id, run_id)
), upserted AS (
    INSERT INTO runs AS r (organization_id, run_id, scenario_id, credits_used, operations,
                           module_count, executions, errors, first_event_at)
    SELECT t.organization_id, t.run_id,
           CASE WHEN b.run_id IS NULL THEN t.scenario_id
                WHEN t.known AND NOT b.known THEN t.scenario_id
                WHEN b.known AND NOT t.known THEN b.scenario_id
                ELSE least(b.scenario_id, t.scenario_id) END,
           t.credits_used, t.operations,
           (SELECT count(*) FROM run_modules m
            WHERE m.organization_id = t.organization_id AND m.run_id = t.run_id),
           t.executions, t.errors, t.first_event_at
    FROM totals t LEFT JOIN before b USING (organization_id, run_id)
    ON CONFLICT (organization_id, run_id) DO UPDATE
    SET scenario_id = excluded.scenario_id,
        credits_used = r.credits_used + excluded.credits_used,
        operations = r.operations + excluded.operations,
        module_count = excluded.module_count,
        executions = r.executions + excluded.executions,
        errors = r.errors + excluded.errors,
        first_event_at = least(r.first_event_at, excluded.first_event_at)
    RETURNING organization_id, run_id, scenario_id, (xmax = 0) AS created
)
INSERT INTO batch_new_runs
SELECT u.organization_id, u.run_id, u.scenario_id, t.first_event_at, 1
FROM upserted u JOIN totals t USING (organization_id, run_id)
LEFT JOIN before b USING (organization_id, run_id)
WHERE u.created OR b.scenario_id <> u.scenario_id
UNION ALL
SELECT b.organization_id, b.run_id, b.scenario_id, NULL, -1
FROM upserted u JOIN before b USING (organization_id, run_id)
WHERE b.scenario_id <> u.scenario_id;

-- runs_from_run_events --
-- runs: status, trigger, kind and times from run events; a finish beats a start
-- whatever order they arrive in. The scenario: as in runs_from_usage.
WITH batch AS (
    SELECT DISTINCT ON (organization_id, data->>'run_id')
           organization_id, data->>'run_id' AS run_id,
           min(data->>'scenario_id') OVER (
               PARTITION BY organization_id, data->>'run_id') AS scenario_id,
           CASE WHEN type LIKE 'com.metering.scenario_run.finished.%' THEN data->>'status'
                ELSE 'running' END AS status,
           data->>'trigger' AS trigger, coalesce(data->>'kind', 'scenario') AS kind,
           (data->>'started_at')::timestamptz AS started_at,
           (data->>'finished_at')::timestamptz AS finished_at,
           (data->>'duration_ms')::bigint AS duration_ms
    FROM projector_batch
    WHERE type LIKE 'com.metering.scenario_run.%'
    ORDER BY organization_id, data->>'run_id',
             (type LIKE 'com.metering.scenario_run.finished.%') DESC, position DESC
), before AS (
    SELECT r.organization_id, r.run_id, r.scenario_id,
           r.executions > 0 OR r.status IS NOT NULL AS known
    FROM runs r JOIN batch USING (organization_id, run_id)
), upserted AS (
    INSERT INTO runs AS r (organization_id, run_id, scenario_id, status, trigger, kind,
                           started_at, finished_at, duration_ms)
    SELECT t.organization_id, t.run_id,
           CASE WHEN b.known THEN least(b.scenario_id, t.scenario_id) ELSE t.scenario_id END,
           t.status, t.trigger, t.kind, t.started_at, t.finished_at, t.duration_ms
    FROM batch t LEFT JOIN before b USING (organization_id, run_id)
    ON CONFLICT (organization_id, run_id) DO UPDATE
    SET scenario_id = excluded.scenario_id,
        status = CASE WHEN excluded.status = 'running' AND r.finished_at IS NOT NULL
                      THEN r.status ELSE excluded.status END,
        trigger = coalesce(excluded.trigger, r.trigger),
        kind = CASE WHEN excluded.status = 'running' AND r.finished_at IS NOT NULL
                    THEN r.kind ELSE excluded.kind END,
        started_at = coalesce(excluded.started_at, r.started_at),
        finished_at = coalesce(excluded.finished_at, r.finished_at),
        duration_ms = coalesce(excluded.duration_ms, r.duration_ms)
    RETURNING organization_id, run_id, scenario_id, started_at, (xmax = 0) AS created
)
INSERT INTO batch_new_runs
SELECT u.organization_id, u.run_id, u.scenario_id, u.started_at, 1
FROM upserted u LEFT JOIN before b USING (organization_id, run_id)
WHERE u.created OR b.scenario_id <> u.scenario_id
UNION ALL
SELECT b.organization_id, b.run_id, b.scenario_id, NULL, -1
FROM upserted u JOIN before b USING (organization_id, run_id)
WHERE b.scenario_id <> u.scenario_id;
