-- The column comes back filled from the runs (what the API shows since 0010).
ALTER TABLE scenario_usage ADD COLUMN last_run_at timestamp with time zone;
UPDATE scenario_usage s SET last_run_at = (
    SELECT max(coalesce(r.started_at, r.first_event_at)) FROM runs r
    WHERE r.organization_id = s.organization_id AND r.scenario_id = s.scenario_id);
