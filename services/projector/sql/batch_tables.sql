-- The projector's batch tables: temporary, one set per connection, emptied at
-- commit. A batch is copied in, cut (batch.sql), projected by the read-model
-- statements (the numbered files beside this one) and gone when its transaction ends.

-- projector_batch --
-- The events of the batch, in commit order.
-- Written by: services/event_store.py (copy_next_batch).
-- Read by: settle.sql, credit_events.sql, the numbered files, batch.sql.
CREATE TEMP TABLE IF NOT EXISTS projector_batch (
    position bigint PRIMARY KEY, transaction_id bigint NOT NULL, source text NOT NULL,
    id text NOT NULL, type text NOT NULL, organization_id text NOT NULL,
    time timestamptz NOT NULL, data jsonb NOT NULL, recorded_at timestamptz NOT NULL
) ON COMMIT DELETE ROWS;

-- batch_usage --
-- Every event that moves credits, with the period and day it counts in: the
-- batch's own (sign 1), and settled events taken back from their old place
-- (sign -1, settled) and given their new one (sign 1, settled). Amounts carry
-- the sign. Models of a run ignore settled rows (only periods and days move),
-- except moved ones: a correction projected before the event it corrects, now
-- taken from the producer's copy of its place and given the event's (run,
-- scenario and module may change too). resolved: an execution, or a correction
-- whose corrected event is in the store (its scenario is the run's evidence).
-- Written by: credit_events.sql (attribute, cancel_unmoved).
-- Read by: 03_period_and_daily_totals.sql, 04_runs.sql, 05_scenarios.sql, cleanup.sql,
-- auto_purchase.sql.
CREATE TEMP TABLE IF NOT EXISTS batch_usage (
    position bigint, source text, id text, organization_id text, scenario_id text,
    run_id text, module_id text, app text, action text, status text,
    credits_used numeric, extra_credits numeric, operations bigint,
    counted_at timestamptz, started_at timestamptz, finished_at timestamptz,
    is_execution boolean, day date, period_start timestamptz, period_end timestamptz,
    sign integer, settled boolean, moved boolean, resolved boolean
) ON COMMIT DELETE ROWS;

-- batch_auto_purchase --
-- The running periods this batch touched, with what is left of their credits, the
-- most that may be bought automatically in them and what already was.
-- Written and read by: auto_purchase.sql (live projector only).
CREATE TEMP TABLE IF NOT EXISTS batch_auto_purchase (
    organization_id text, period_start timestamptz, enabled boolean, threshold numeric,
    pack numeric, remaining numeric, cap numeric, bought numeric
) ON COMMIT DELETE ROWS;

-- batch_watch --
-- What this batch's organizations are watched for, one row per threshold: their
-- running periods' credits (75, 90, 100 %), their scenarios' budgets (90, 100 %) and
-- the auto-purchase cap; `over` when it is crossed now, `under` when it may fire again.
-- Written and read by: notifications.sql (live projector only).
CREATE TEMP TABLE IF NOT EXISTS batch_watch (
    organization_id text, period_start timestamptz, period_end timestamptz, kind text,
    scenario_id text, percent integer, used numeric, total numeric, crossed_at timestamptz,
    over boolean, under boolean
) ON COMMIT DELETE ROWS;

-- batch_new_runs --
-- Runs this batch created (a run counts once in its scenario's run count),
-- or moved to another scenario (runs -1 in the old one, 1 in the new).
-- Written by: 04_runs.sql. Read by: 05_scenarios.sql.
CREATE TEMP TABLE IF NOT EXISTS batch_new_runs (
    organization_id text, run_id text, scenario_id text, first_event_at timestamptz,
    runs integer
) ON COMMIT DELETE ROWS;

-- settle_windows --
-- Organizations whose billing periods this batch (re)defines, and the window of
-- event time in which an event may now belong to another period or day.
-- Written by: settle.sql (settle_windows). Read by: settle.sql (settled_events).
CREATE TEMP TABLE IF NOT EXISTS settle_windows (
    organization_id text, window_start timestamptz, window_end timestamptz
) ON COMMIT DELETE ROWS;

-- settled_events --
-- Events already projected (before this batch) of those organizations in those
-- windows, and corrections of events in this batch: their attribution is taken
-- back and given again under the new periods or the corrected event's place.
-- Written by: settle.sql. Read by: credit_events.sql (extract).
CREATE TEMP TABLE IF NOT EXISTS settled_events (LIKE projector_batch INCLUDING ALL)
    ON COMMIT DELETE ROWS;

-- credit_sources --
-- The batch's events and the settled ones (settled = true) as one source.
-- Read by: credit_events.sql (extract, extract_corrections).
CREATE OR REPLACE TEMP VIEW credit_sources AS
SELECT position, source, id, type, organization_id, time, data AS d, false AS settled
FROM projector_batch
UNION ALL
SELECT position, source, id, type, organization_id, time, data, true FROM settled_events;

-- credit_events --
-- Every event that moves credits, from the batch and from settled_events, with
-- what it moves and the time it counts at, before any period or day is chosen.
-- Written by: credit_events.sql (extract, extract_corrections, resolve_late).
-- Read by: credit_events.sql (attribute, mark_moved).
CREATE TEMP TABLE IF NOT EXISTS credit_events (
    position bigint, source text, id text, organization_id text, scenario_id text,
    run_id text, module_id text, app text, action text, status text,
    credits_used numeric, extra_credits numeric, operations bigint,
    counted_at timestamptz, started_at timestamptz, finished_at timestamptz,
    is_execution boolean, settled boolean, corrects_source text, corrects_id text,
    resolved boolean, moved boolean
) ON COMMIT DELETE ROWS;

-- batch_scope --
-- What the read models held before this batch: the store up to the checkpoint
-- (a live batch starts right after it; a replayed event lies behind it), less
-- the events in batch_unprojected.
-- Written by: projection.py (load_batch, replay). Read by: settle.sql, credit_events.sql.
CREATE TEMP TABLE IF NOT EXISTS batch_scope (
    projected_xid xid8, projected_position bigint
) ON COMMIT DELETE ROWS;

-- batch_unprojected --
-- Events behind the checkpoint that are not in the read models: held in
-- quarantine, or dropped from it (a rebuild leaves the live drops out too).
-- Written by: batch.sql (unprojected). Read by: settle.sql, credit_events.sql.
CREATE TEMP TABLE IF NOT EXISTS batch_unprojected (position bigint PRIMARY KEY)
    ON COMMIT DELETE ROWS;
