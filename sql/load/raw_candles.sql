-- Upsert the registered relation `staging` into raw_candles; the primary key makes a repeat load a no-op.
INSERT OR REPLACE INTO raw_candles BY NAME SELECT * FROM staging;
