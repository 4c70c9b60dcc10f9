-- Rebuilding the read models beside the live ones (services/projector/rebuild.py).
-- The new tables are built in the schema projection_rebuild; the swap moves the
-- live ones to projection_retired and the new ones to public. One rebuild of a
-- database runs at a time (rebuild_lock), so the schema names are fixed.
-- Every read model is named here: tests/unit/test_sql.py checks the list
-- against READ_MODELS.

-- rebuild_lock --
-- Session-level: held for the whole rebuild, released when its connection closes.
SELECT pg_try_advisory_lock($1);

-- drop_leftovers --
-- A rebuild that died (or ran without swapping) leaves its schemas behind.
DROP SCHEMA IF EXISTS projection_rebuild CASCADE;
DROP SCHEMA IF EXISTS projection_retired CASCADE;

-- create_tables_beside --
CREATE SCHEMA projection_rebuild;
CREATE TABLE projection_rebuild.organizations (LIKE public.organizations INCLUDING ALL);
CREATE TABLE projection_rebuild.billing_periods (LIKE public.billing_periods INCLUDING ALL);
CREATE TABLE projection_rebuild.plan_changes (LIKE public.plan_changes INCLUDING ALL);
CREATE TABLE projection_rebuild.organization_daily_usage (LIKE public.organization_daily_usage INCLUDING ALL);
CREATE TABLE projection_rebuild.scenario_usage (LIKE public.scenario_usage INCLUDING ALL);
CREATE TABLE projection_rebuild.scenario_period_usage (LIKE public.scenario_period_usage INCLUDING ALL);
CREATE TABLE projection_rebuild.scenario_daily_usage (LIKE public.scenario_daily_usage INCLUDING ALL);
CREATE TABLE projection_rebuild.scenario_module_period_usage (LIKE public.scenario_module_period_usage INCLUDING ALL);
CREATE TABLE projection_rebuild.runs (LIKE public.runs INCLUDING ALL);
CREATE TABLE projection_rebuild.run_modules (LIKE public.run_modules INCLUDING ALL);
CREATE TABLE projection_rebuild.module_executions (LIKE public.module_executions INCLUDING ALL);
CREATE TABLE projection_rebuild.credit_purchases (LIKE public.credit_purchases INCLUDING ALL);
CREATE TABLE projection_rebuild.scenario_budgets (LIKE public.scenario_budgets INCLUDING ALL);
CREATE TABLE projection_rebuild.projection_checkpoints (LIKE public.projection_checkpoints INCLUDING ALL);
CREATE TABLE projection_rebuild.projector_quarantine (LIKE public.projector_quarantine INCLUDING ALL);

-- build_beside --
-- Unqualified names now mean the new tables; the event store stays in public.
SET search_path = projection_rebuild, public;

-- analyze_beside --
-- Statistics for the new tables before they go live: without them the API's plans are
-- guesses until autovacuum gets to them, under load. A sample: seconds at 30M events.
ANALYZE projection_rebuild.organizations, projection_rebuild.billing_periods,
        projection_rebuild.plan_changes, projection_rebuild.organization_daily_usage,
        projection_rebuild.scenario_usage, projection_rebuild.scenario_period_usage,
        projection_rebuild.scenario_daily_usage, projection_rebuild.scenario_module_period_usage,
        projection_rebuild.runs, projection_rebuild.run_modules,
        projection_rebuild.module_executions, projection_rebuild.credit_purchases,
        projection_rebuild.scenario_budgets;

-- archived_months --
-- The months archived out of the store (services/archive.py), as one text; NULL when none.
SELECT string_agg(month, ', ' ORDER BY month) FROM public.event_archives
WHERE restored_at IS NULL;

-- count_events --
SELECT count(*) FROM public.events;

-- swap_tables --
-- Inside the swap's transaction, after the batch lock and the final catch-up.
CREATE SCHEMA projection_retired;
ALTER TABLE public.organizations SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.organizations SET SCHEMA public;
ALTER TABLE public.billing_periods SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.billing_periods SET SCHEMA public;
ALTER TABLE public.plan_changes SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.plan_changes SET SCHEMA public;
ALTER TABLE public.organization_daily_usage SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.organization_daily_usage SET SCHEMA public;
ALTER TABLE public.scenario_usage SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.scenario_usage SET SCHEMA public;
ALTER TABLE public.scenario_period_usage SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.scenario_period_usage SET SCHEMA public;
ALTER TABLE public.scenario_daily_usage SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.scenario_daily_usage SET SCHEMA public;
ALTER TABLE public.scenario_module_period_usage SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.scenario_module_period_usage SET SCHEMA public;
ALTER TABLE public.runs SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.runs SET SCHEMA public;
ALTER TABLE public.run_modules SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.run_modules SET SCHEMA public;
ALTER TABLE public.module_executions SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.module_executions SET SCHEMA public;
ALTER TABLE public.credit_purchases SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.credit_purchases SET SCHEMA public;
ALTER TABLE public.scenario_budgets SET SCHEMA projection_retired;
ALTER TABLE projection_rebuild.scenario_budgets SET SCHEMA public;

-- mark_all_changed --
-- Every organization's answers may differ after the swap: new versions for all.
INSERT INTO public.organization_versions AS v (organization_id, version)
SELECT organization_id, pg_current_xact_id()::text::bigint
FROM (SELECT organization_id FROM public.billing_periods
      UNION SELECT organization_id FROM public.runs
      UNION SELECT organization_id FROM public.organizations) o
ON CONFLICT (organization_id) DO UPDATE SET version = excluded.version;

-- back_to_public --
-- The new tracking record goes to the live checkpoint table.
SET LOCAL search_path = public;

-- release_live_quarantine --
-- What the rebuild parked replaces what the live projection held; drops stay.
DELETE FROM public.projector_quarantine WHERE released_at IS NULL;

-- quarantine_from_rebuild --
INSERT INTO public.projector_quarantine SELECT * FROM projection_rebuild.projector_quarantine
ON CONFLICT (position) DO NOTHING;

-- drop_rebuilt --
DROP SCHEMA projection_rebuild CASCADE;

-- drop_retired --
DROP SCHEMA projection_retired CASCADE;
