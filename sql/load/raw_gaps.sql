-- Replace every open gap with the registered relation `staging` (a derived table: rebuilt after each run).
DELETE FROM raw_gaps;
INSERT INTO raw_gaps BY NAME SELECT * FROM staging;
