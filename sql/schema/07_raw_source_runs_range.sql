-- The range each run asked for and whether the fetch ran to its end: a run that failed midway
-- leaves a range the next run asks for again (sql/queries/catch_up.sql), so no hole is permanent.
-- Added after the table first shipped, hence ALTER (older stores and history gain NULLs).
ALTER TABLE raw_source_runs ADD COLUMN IF NOT EXISTS range_from TIMESTAMP;
ALTER TABLE raw_source_runs ADD COLUMN IF NOT EXISTS range_to TIMESTAMP;
ALTER TABLE raw_source_runs ADD COLUMN IF NOT EXISTS complete BOOLEAN;
