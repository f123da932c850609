-- Upsert the registered relation `staging` into {table}; the primary key makes a repeat load a no-op.
-- Template: {table} comes from pipeline/store/tables.py's list, checked before it is put in.
INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM staging;
