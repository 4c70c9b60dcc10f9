DROP INDEX events_by_record;
DROP TABLE ingest_duplicates;
DROP TABLE ingest_ranges;
