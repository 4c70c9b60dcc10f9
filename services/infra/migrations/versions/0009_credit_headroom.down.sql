-- Back to numeric(24,6) (fails if a sum no longer fits).
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'numeric'
          AND numeric_precision = 30 AND numeric_scale = 6
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE numeric(24,6)',
                       c.table_name, c.column_name);
    END LOOP;
END
$$;
