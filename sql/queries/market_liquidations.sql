-- Realized liquidations of one instrument, oldest first. Params: $exchange, $instrument, $since_ms.
SELECT epoch_ms(ts) AS time_ms, side, price, size_base, notional_usd
FROM raw_liquidations
WHERE exchange = $exchange AND instrument = $instrument AND ts >= make_timestamp($since_ms * 1000)
ORDER BY ts;
