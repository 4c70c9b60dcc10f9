-- Corrections count where the event they correct is (its time, scenario, run
-- and module) once that event is in the store: a correction projected before
-- it is moved when it arrives, found by this index.
CREATE INDEX events_corrections ON events
    ((data->'corrects_event'->>'source'), (data->'corrects_event'->>'id'))
    WHERE type LIKE 'com.metering.credits.adjusted.%';

-- A module-level correction may be projected before any execution of its
-- module: the module's app and action are then not known yet.
ALTER TABLE run_modules ALTER COLUMN app DROP NOT NULL;
ALTER TABLE run_modules ALTER COLUMN action DROP NOT NULL;
ALTER TABLE scenario_module_period_usage ALTER COLUMN app DROP NOT NULL;
ALTER TABLE scenario_module_period_usage ALTER COLUMN action DROP NOT NULL;
