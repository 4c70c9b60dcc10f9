-- What ran, from the run's own events: 'scenario' or 'ai_agent' (NULL until one arrives).
ALTER TABLE runs ADD COLUMN kind text;

-- A run's place in a list is its start: the earliest of its run events' started_at
-- and its first counted event. It only moves earlier as late events arrive, so a
-- cursor page (newest first) never skips a run (REVIEW D6).
DROP INDEX runs_history;
CREATE INDEX runs_history ON runs
    (organization_id, scenario_id, (least(started_at, first_event_at)) DESC, run_id DESC);
CREATE INDEX runs_by_time ON runs
    (organization_id, (least(started_at, first_event_at)) DESC, run_id DESC);
