DELETE FROM run_modules WHERE app IS NULL OR action IS NULL;
DELETE FROM scenario_module_period_usage WHERE app IS NULL OR action IS NULL;
ALTER TABLE scenario_module_period_usage ALTER COLUMN action SET NOT NULL;
ALTER TABLE scenario_module_period_usage ALTER COLUMN app SET NOT NULL;
ALTER TABLE run_modules ALTER COLUMN action SET NOT NULL;
ALTER TABLE run_modules ALTER COLUMN app SET NOT NULL;
DROP INDEX events_corrections;
