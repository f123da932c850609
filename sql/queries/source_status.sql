-- Latest state of every (asset, exchange, instrument, dataset) source: last run, last success, last error,
-- how many of its prints sit in quarantine, and the holes the last run could not fill (raw_gaps).
WITH runs AS (
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
),
quarantined AS (
    SELECT exchange, instrument, dataset, count(*) AS quarantined FROM raw_quarantine GROUP BY ALL
),
gaps AS (
    SELECT exchange, instrument, dataset, count(*) AS gaps,
           sum(epoch_ms(gap_to) - epoch_ms(gap_from)) / 60000 AS gap_minutes,
           arg_min(reason, gap_from) AS gap_reason
    FROM raw_gaps GROUP BY ALL
)
SELECT r.*, coalesce(q.quarantined, 0) AS quarantined, coalesce(g.gaps, 0) AS gaps, g.gap_minutes, g.gap_reason
FROM runs AS r
LEFT JOIN quarantined AS q USING (exchange, instrument, dataset)
LEFT JOIN gaps AS g USING (exchange, instrument, dataset)
ORDER BY asset, exchange, dataset;
