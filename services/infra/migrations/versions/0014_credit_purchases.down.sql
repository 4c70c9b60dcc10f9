ALTER TABLE auto_purchase_outbox DROP COLUMN threshold_credits, DROP COLUMN remaining_credits;
DROP TABLE credit_purchases;
