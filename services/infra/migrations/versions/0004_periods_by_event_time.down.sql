DROP INDEX events_credit_changes;
ALTER TABLE organizations DROP COLUMN timezone_since;
ALTER TABLE organizations DROP COLUMN plan_since;
ALTER TABLE billing_periods DROP COLUMN timezone;
ALTER TABLE billing_periods DROP COLUMN subscribed;
