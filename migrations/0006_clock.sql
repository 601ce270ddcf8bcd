-- One clock for every deadline, log line and receipt: podium_now(). In production it is the
-- database's wall clock; a test replaces the function to freeze or move time instead of
-- sleeping (tests/helpers.py DatabaseClock). Nothing else may read clock_timestamp().

CREATE FUNCTION podium_now() RETURNS timestamptz
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$ SELECT clock_timestamp() $$;

ALTER TABLE countdown_log ALTER COLUMN at SET DEFAULT podium_now();
ALTER TABLE dataset_download ALTER COLUMN at SET DEFAULT podium_now();
ALTER TABLE release ALTER COLUMN prepared_at SET DEFAULT podium_now();
