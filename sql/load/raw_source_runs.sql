-- Upsert the registered relation `staging` into raw_source_runs; the primary key makes a repeat load a no-op.
INSERT OR REPLACE INTO raw_source_runs BY NAME SELECT * FROM staging;
