-- Every collection-run record, partitioned by the day the run started, in partition then primary-key order.
SELECT *, strftime(started_at, '%Y-%m-%d') AS _date
FROM raw_source_runs
ORDER BY exchange, instrument, _date, run_id, dataset;
