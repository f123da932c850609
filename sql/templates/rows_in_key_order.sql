-- Every row of {table} in primary-key order (deterministic export of the small unpartitioned tables; test dumps).
-- Template: {table}, {columns} and {keys} come from DuckDB's own catalogue, checked before they are put in.
SELECT {columns} FROM {table} ORDER BY {keys};
