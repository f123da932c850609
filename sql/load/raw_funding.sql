-- Upsert the registered relation `staging` into raw_funding; the primary key makes a repeat load a no-op.
INSERT OR REPLACE INTO raw_funding BY NAME SELECT * FROM staging;
