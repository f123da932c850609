-- Row counts of every raw table (for checks before publishing and for `liqmap check`).
SELECT 'raw_candles' AS table_name, count(*) AS n FROM raw_candles
UNION ALL SELECT 'raw_open_interest', count(*) FROM raw_open_interest
UNION ALL SELECT 'raw_funding', count(*) FROM raw_funding
UNION ALL SELECT 'raw_liquidations', count(*) FROM raw_liquidations
UNION ALL SELECT 'raw_source_runs', count(*) FROM raw_source_runs
UNION ALL SELECT 'raw_fx_rates', count(*) FROM raw_fx_rates;
