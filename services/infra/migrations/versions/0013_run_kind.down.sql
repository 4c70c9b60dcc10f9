DROP INDEX runs_by_time;
DROP INDEX runs_history;
CREATE INDEX runs_history ON runs
    (organization_id, scenario_id, (coalesce(started_at, first_event_at)) DESC, run_id DESC);
ALTER TABLE runs DROP COLUMN kind;
