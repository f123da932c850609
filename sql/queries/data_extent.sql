-- First and last stored timestamp per (exchange, instrument, dataset): drives incremental fetches and freshness.
SELECT exchange, instrument, 'candles' AS dataset, min(epoch_ms(ts)) AS first_ms, max(epoch_ms(ts)) AS last_ms, count(*) AS n
FROM raw_candles GROUP BY ALL
UNION ALL
SELECT exchange, instrument, 'open_interest', min(epoch_ms(ts)), max(epoch_ms(ts)), count(*) FROM raw_open_interest GROUP BY ALL
UNION ALL
SELECT exchange, instrument, 'funding', min(epoch_ms(ts)), max(epoch_ms(ts)), count(*) FROM raw_funding GROUP BY ALL
UNION ALL
SELECT exchange, instrument, 'liquidations', min(epoch_ms(ts)), max(epoch_ms(ts)), count(*) FROM raw_liquidations GROUP BY ALL
ORDER BY exchange, instrument, dataset;
