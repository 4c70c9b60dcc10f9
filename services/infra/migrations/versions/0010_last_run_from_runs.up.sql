-- scenario_usage.last_run_at was a running greatest() over each batch's
-- executions and the runs the batch created or moved: when a run changed
-- scenario between batches, it depended on how the events were cut (a rebuild
-- in one batch disagreed with the live models). A scenario's last run is now the
-- latest start of the runs in it, read from runs (index runs_history).
ALTER TABLE scenario_usage DROP COLUMN last_run_at;
