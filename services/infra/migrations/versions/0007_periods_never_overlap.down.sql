ALTER TABLE organizations DROP COLUMN auto_purchase_by;
ALTER TABLE organizations DROP COLUMN timezone_by;
ALTER TABLE organizations DROP COLUMN plan_by;
UPDATE billing_periods SET period_end = subscribed_end WHERE subscribed;
ALTER TABLE billing_periods DROP COLUMN defined_by;
ALTER TABLE billing_periods DROP COLUMN defined_at;
ALTER TABLE billing_periods DROP COLUMN subscribed_end;
