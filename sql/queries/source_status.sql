-- Latest state of every (asset, exchange, instrument, dataset) source: last run, last success, last error.
SELECT
    asset, exchange, instrument, dataset,
    arg_max(status, finished_at)                                   AS last_status,
    max(finished_at)                                               AS last_run,
    max(finished_at) FILTER (WHERE status IN ('ok', 'partial'))    AS last_success,
    max(finished_at) FILTER (WHERE status IN ('error', 'blocked')) AS last_error_at,
    arg_max(message, finished_at) FILTER (WHERE status IN ('error', 'blocked')) AS last_error,
    sum(rows_stored)                                               AS rows_stored
FROM raw_source_runs
GROUP BY ALL
ORDER BY asset, exchange, dataset;
