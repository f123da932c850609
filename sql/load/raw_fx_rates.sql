-- Upsert the registered relation `staging` into raw_fx_rates; the primary key makes a repeat load a no-op.
INSERT OR REPLACE INTO raw_fx_rates BY NAME SELECT * FROM staging;
