-- The last time the shard found no event past its checkpoint: every event stored
-- before it is in the read models (NULL until it first catches up).
ALTER TABLE projection_checkpoints ADD COLUMN caught_up_at timestamp with time zone;
