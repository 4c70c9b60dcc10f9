ALTER TABLE billing_periods DROP COLUMN subscribed_credits;
ALTER TABLE billing_periods DROP COLUMN subscribed_plan;
DROP TABLE plan_changes;
