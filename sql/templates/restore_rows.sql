-- Load the history files $files into {table} in one statement: one row per key, the file of the highest rank
-- winning (`history_ranks`, filename -> rank, is registered by the caller; months < days < runs). On an empty
-- table every row is new; on a filled one the history's value replaces the store's (an idempotent upsert).
-- Template: {table}, {keys} and {hist_columns} are identifiers from DuckDB's own catalogue, checked before they
-- are put in; $files is a parameter.
INSERT OR REPLACE INTO {table} BY NAME
SELECT {hist_columns}
FROM (
    SELECT h.*, r.rank AS _rank
    FROM read_parquet($files, filename = true, union_by_name = true, hive_partitioning = false) AS h
    JOIN history_ranks AS r USING (filename)
)
QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _rank DESC) = 1;
