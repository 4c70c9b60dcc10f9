ALTER TABLE projection_checkpoints DROP COLUMN caught_up_at;
