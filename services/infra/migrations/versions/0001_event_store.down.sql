DROP TABLE projection_checkpoints;
DROP TABLE rejected_events;
DROP TABLE events;
