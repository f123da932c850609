-- Upsert the registered relation `staging` into raw_liquidations; the primary key makes a repeat load a no-op.
INSERT OR REPLACE INTO raw_liquidations BY NAME SELECT * FROM staging;
