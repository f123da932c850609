-- Funding events of one instrument, oldest first (rate per the venue's own interval).
-- Params: $exchange, $instrument, $since_ms.
SELECT epoch_ms(ts) AS time_ms, rate
FROM raw_funding
WHERE exchange = $exchange AND instrument = $instrument AND ts >= make_timestamp($since_ms * 1000)
ORDER BY ts;
