-- The most credits an organization buys automatically in one billing period
-- (credits.auto_purchase_configured's max_credits_per_period); NULL: the period's plan
-- credits.
ALTER TABLE organizations ADD COLUMN auto_purchase_cap numeric(30,6);
-- The credits already bought automatically in a period: the cap's count.
CREATE INDEX auto_purchase_outbox_by_period ON auto_purchase_outbox (organization_id, period_start);
