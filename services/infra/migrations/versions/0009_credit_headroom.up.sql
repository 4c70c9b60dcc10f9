-- Every credit column widens from numeric(24,6) to numeric(30,6): 24 integer
-- digits hold a billion events at the contract's per-event cap (under 10^9
-- credits) with a thousandfold margin, so no sum can overflow (REVIEW G8).
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'numeric'
          AND numeric_precision = 24 AND numeric_scale = 6
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE numeric(30,6)',
                       c.table_name, c.column_name);
    END LOOP;
END
$$;
