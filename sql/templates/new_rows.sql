-- Rows of the store table {table} that the history lacks or holds with other values (what an append-only export writes).
-- Template: {table}, {columns}, {hist_columns} and {keys} are identifiers from DuckDB's own catalogue, checked
-- before they are put in; $files (the history files) is a parameter. `history_ranks` (filename -> rank) is
-- registered by the caller: where a key is in several files, the highest rank is the history's value.
WITH hist AS (
    SELECT {hist_columns}
    FROM (
        SELECT h.*, r.rank AS _rank
        FROM read_parquet($files, filename = true, union_by_name = true) AS h
        JOIN history_ranks AS r USING (filename)
    )
    QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _rank DESC) = 1
)
SELECT {columns} FROM {table}
EXCEPT
SELECT * FROM hist
