DROP TABLE auto_purchase_outbox;
DROP TABLE auto_purchase_state;
