-- Upsert the registered relation `staging` into raw_open_interest; the primary key makes a repeat load a no-op.
INSERT OR REPLACE INTO raw_open_interest BY NAME SELECT * FROM staging;
