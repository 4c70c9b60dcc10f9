DROP INDEX auto_purchase_outbox_by_period;
ALTER TABLE organizations DROP COLUMN auto_purchase_cap;
