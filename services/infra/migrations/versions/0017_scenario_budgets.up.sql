-- Each scenario's budget (com.metering.scenario.budget_set): credits per billing
-- period, NULL for none. The event with the latest set_by (its set_at, source and id)
-- wins, whatever the order the events arrive or are projected in.
CREATE TABLE scenario_budgets (
    organization_id    text NOT NULL,
    scenario_id        text NOT NULL,
    credits_per_period numeric(30,6),
    set_by             text NOT NULL,
    PRIMARY KEY (organization_id, scenario_id)
);
