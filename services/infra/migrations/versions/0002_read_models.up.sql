-- Read models. Every key starts with organization_id, so the tables can be
-- distributed by organization (Citus) without changing a query. Credits are
-- numeric with 6 decimal places: exact, never floating point.

-- Organization settings the projections need: time zone for days, the
-- auto-purchase configuration, the current plan.
CREATE TABLE organizations (
    organization_id         text PRIMARY KEY,
    timezone                text NOT NULL DEFAULT 'UTC',
    plan                    text,
    plan_credits            numeric(24, 6),
    auto_purchase_enabled   boolean NOT NULL DEFAULT false,
    auto_purchase_threshold numeric(24, 6),
    auto_purchase_pack      numeric(24, 6)
);

-- One row per billing period; an organization without subscription events
-- gets calendar months in UTC.
CREATE TABLE billing_periods (
    organization_id text NOT NULL,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    plan            text,
    plan_credits    numeric(24, 6) NOT NULL DEFAULT 0,
    extra_credits   numeric(24, 6) NOT NULL DEFAULT 0,
    credits_used    numeric(24, 6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, period_start),
    CHECK (period_end > period_start)
);

CREATE TABLE organization_daily_usage (
    organization_id text NOT NULL,
    day             date NOT NULL,
    credits_used    numeric(24, 6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, day)
);

-- Scenario totals: all time, per billing period (the scenarios list, largest
-- first) and per day.
CREATE TABLE scenario_usage (
    organization_id text NOT NULL,
    scenario_id     text NOT NULL,
    credits_used    numeric(24, 6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    runs            bigint NOT NULL DEFAULT 0,
    last_run_at     timestamptz,
    PRIMARY KEY (organization_id, scenario_id)
);

CREATE TABLE scenario_period_usage (
    organization_id text NOT NULL,
    period_start    timestamptz NOT NULL,
    scenario_id     text NOT NULL,
    credits_used    numeric(24, 6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, period_start, scenario_id)
);
CREATE INDEX scenario_period_usage_largest_first
    ON scenario_period_usage (organization_id, period_start, credits_used DESC, scenario_id);

CREATE TABLE scenario_daily_usage (
    organization_id text NOT NULL,
    scenario_id     text NOT NULL,
    day             date NOT NULL,
    credits_used    numeric(24, 6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, scenario_id, day)
);

-- Credits per module across a period's runs (the scenario's module breakdown).
CREATE TABLE scenario_module_period_usage (
    organization_id text NOT NULL,
    period_start    timestamptz NOT NULL,
    scenario_id     text NOT NULL,
    module_id       text NOT NULL,
    app             text NOT NULL,
    action          text NOT NULL,
    credits_used    numeric(24, 6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    executions      bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, period_start, scenario_id, module_id)
);

-- One scenario run. Credits come from module events even when run events
-- are late or missing; status and times from run events when they arrive.
CREATE TABLE runs (
    organization_id text NOT NULL,
    run_id          text NOT NULL,
    scenario_id     text NOT NULL,
    status          text,
    trigger         text,
    started_at      timestamptz,
    finished_at     timestamptz,
    duration_ms     bigint,
    credits_used    numeric(24, 6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    module_count    integer NOT NULL DEFAULT 0,
    executions      bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    first_event_at  timestamptz,
    PRIMARY KEY (organization_id, run_id)
);
-- Run history, newest first, with a keyset cursor on (started, run_id).
CREATE INDEX runs_history
    ON runs (organization_id, scenario_id, (coalesce(started_at, first_event_at)) DESC, run_id DESC);

-- Credits per module within one run (the bubble above each module).
CREATE TABLE run_modules (
    organization_id text NOT NULL,
    run_id          text NOT NULL,
    module_id       text NOT NULL,
    app             text NOT NULL,
    action          text NOT NULL,
    credits_used    numeric(24, 6) NOT NULL DEFAULT 0,
    operations      bigint NOT NULL DEFAULT 0,
    executions      bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, run_id, module_id)
);

-- The run's log: one row per module execution, in order.
CREATE TABLE module_executions (
    organization_id text NOT NULL,
    run_id          text NOT NULL,
    started_at      timestamptz NOT NULL,
    event_position  bigint NOT NULL,
    module_id       text NOT NULL,
    app             text NOT NULL,
    action          text NOT NULL,
    status          text NOT NULL,
    operations      bigint NOT NULL,
    credits         numeric(24, 6) NOT NULL,
    finished_at     timestamptz NOT NULL,
    event_source    text NOT NULL,
    event_id        text NOT NULL,
    PRIMARY KEY (organization_id, run_id, started_at, event_position)
);
