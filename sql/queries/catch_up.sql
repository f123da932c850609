-- What each series is missing in the recent past: one row per
--   'last'    newest stored row at or before now (rows from the future do not count),
--   'hole'    two consecutive rows further apart than the series' step, within the scan window
--             (candles: their interval; open interest and funding: 1.5x the series' median spacing),
--   'pending' a run that failed midway and that no complete run covering it has followed since.
-- Liquidations are irregular (no holes), Hyperliquid OI is a snapshot per run (no history to ask).
-- Params: $now_ms (the run's clock), $scan_from_ms (start of the hole scan, epoch ms).
WITH series AS (
    SELECT exchange, instrument, 'candles' AS dataset, epoch_ms(ts) AS t, interval_s * 1000 AS step
    FROM raw_candles
    WHERE ts >= make_timestamp(($scan_from_ms - 86400000) * 1000) AND ts <= make_timestamp($now_ms * 1000)
    UNION ALL
    SELECT exchange, instrument, 'open_interest', epoch_ms(ts), NULL
    FROM raw_open_interest
    WHERE exchange <> 'hyperliquid'
      AND ts >= make_timestamp(($scan_from_ms - 86400000) * 1000) AND ts <= make_timestamp($now_ms * 1000)
    UNION ALL
    SELECT exchange, instrument, 'funding', epoch_ms(ts), NULL
    FROM raw_funding
    WHERE ts >= make_timestamp(($scan_from_ms - 86400000) * 1000) AND ts <= make_timestamp($now_ms * 1000)
),
steps AS (
    SELECT *, lead(t) OVER w AS next_t
    FROM series
    WINDOW w AS (PARTITION BY exchange, instrument, dataset ORDER BY t)
),
spaced AS (
    SELECT *, coalesce(step, 1.5 * median(next_t - t) OVER (PARTITION BY exchange, instrument, dataset)) AS max_step
    FROM steps
),
holes AS (
    SELECT exchange, instrument, dataset, 'hole' AS kind, t AS from_ms, next_t AS to_ms
    FROM spaced
    WHERE next_t IS NOT NULL AND next_t - t > max_step AND next_t > $scan_from_ms
),
last AS (
    SELECT exchange, instrument, 'candles' AS dataset, 'last' AS kind, max(epoch_ms(ts)) AS from_ms, NULL::BIGINT AS to_ms
    FROM raw_candles WHERE ts <= make_timestamp($now_ms * 1000) GROUP BY ALL
    UNION ALL
    SELECT exchange, instrument, 'open_interest', 'last', max(epoch_ms(ts)), NULL
    FROM raw_open_interest WHERE ts <= make_timestamp($now_ms * 1000) GROUP BY ALL
    UNION ALL
    SELECT exchange, instrument, 'funding', 'last', max(epoch_ms(ts)), NULL
    FROM raw_funding WHERE ts <= make_timestamp($now_ms * 1000) GROUP BY ALL
    UNION ALL
    SELECT exchange, instrument, 'liquidations', 'last', max(epoch_ms(ts)), NULL
    FROM raw_liquidations WHERE ts <= make_timestamp($now_ms * 1000) GROUP BY ALL
),
pending AS (
    SELECT r.exchange, r.instrument, r.dataset, 'pending' AS kind,
           min(epoch_ms(r.range_from)) AS from_ms, max(epoch_ms(r.range_to)) AS to_ms
    FROM raw_source_runs AS r
    WHERE r.complete = false AND r.range_from IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM raw_source_runs AS c
          WHERE c.complete AND c.exchange = r.exchange AND c.instrument = r.instrument AND c.dataset = r.dataset
            AND c.started_at > r.started_at AND c.range_from <= r.range_from)
    GROUP BY ALL
)
SELECT * FROM last
UNION ALL SELECT * FROM holes
UNION ALL SELECT * FROM pending
ORDER BY exchange, instrument, dataset, kind, from_ms;
