-- The projector's batch tables: temporary, one set per connection, emptied at
-- commit. A batch is copied in, cut (batch.sql), projected by the read-model
-- statements (the numbered files beside this one) and gone when its transaction ends.

-- projector_batch --
-- The events of the batch, in commit order.
-- Written by: services/event_store.py (copy_next_batch); trimmed by cut_at_second_subscription.
-- Read by: every numbered statement file, batch_end and batch_ages below.
CREATE TEMP TABLE IF NOT EXISTS projector_batch (
    position bigint PRIMARY KEY, transaction_id bigint NOT NULL, source text NOT NULL,
    id text NOT NULL, type text NOT NULL, organization_id text NOT NULL,
    time timestamptz NOT NULL, data jsonb NOT NULL, recorded_at timestamptz NOT NULL
) ON COMMIT DELETE ROWS;

-- batch_usage --
-- Every event of the batch that moves credits, with the period and day it counts in.
-- Written by: 03_batch_usage.sql.
-- Read by: 04_period_and_daily_totals.sql, 05_runs.sql, 06_scenarios.sql, auto_purchase.sql.
CREATE TEMP TABLE IF NOT EXISTS batch_usage (
    position bigint, source text, id text, organization_id text, scenario_id text,
    run_id text, module_id text, app text, action text, status text,
    credits_used numeric, extra_credits numeric, operations bigint,
    counted_at timestamptz, started_at timestamptz, finished_at timestamptz,
    is_execution boolean, day date, period_start timestamptz, period_end timestamptz
) ON COMMIT DELETE ROWS;

-- batch_auto_purchase --
-- The running periods this batch touched, with what is left of their credits.
-- Written and read by: auto_purchase.sql (live projector only).
CREATE TEMP TABLE IF NOT EXISTS batch_auto_purchase (
    organization_id text, period_start timestamptz, enabled boolean, threshold numeric,
    pack numeric, remaining numeric
) ON COMMIT DELETE ROWS;

-- batch_new_runs --
-- Runs this batch created (a run counts once in its scenario's run count).
-- Written by: 05_runs.sql. Read by: 06_scenarios.sql.
CREATE TEMP TABLE IF NOT EXISTS batch_new_runs (
    organization_id text, run_id text, scenario_id text, first_event_at timestamptz
) ON COMMIT DELETE ROWS;
