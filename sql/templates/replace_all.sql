-- Replace every row of the derived table {table} with the registered relation `staging` (rebuilt after each run).
-- Template: {table} comes from pipeline/store/tables.py's list, checked before it is put in.
DELETE FROM {table};
INSERT INTO {table} BY NAME SELECT * FROM staging;
