-- Plan changes by effective time: the plan and credits of the period holding
-- effective_at become the new plan's from then on, whichever of the change and
-- the period's own subscription event arrives first.
CREATE TABLE plan_changes (
    organization_id text NOT NULL,
    effective_at    timestamptz NOT NULL,
    plan            text NOT NULL,
    plan_credits    numeric(24, 6) NOT NULL,
    PRIMARY KEY (organization_id, effective_at)
);

-- What the period's subscription event says, kept apart from the plan in
-- effect (plan, plan_credits), which a plan change inside the period overrides.
ALTER TABLE billing_periods ADD COLUMN subscribed_plan text;
ALTER TABLE billing_periods ADD COLUMN subscribed_credits numeric(24, 6);
UPDATE billing_periods SET subscribed_plan = plan, subscribed_credits = plan_credits
WHERE subscribed;
