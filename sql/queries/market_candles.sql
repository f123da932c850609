-- Candles of one instrument in USD as the model sees them (prep_candles: quarantined prints left out,
-- the finest stored interval), oldest first. Params: $exchange, $instrument, $since_ms (epoch ms, inclusive).
SELECT time_ms, interval_s, open, high, low, close, volume, taker_buy_volume, quote, usd_per_quote
FROM prep_candles
WHERE exchange = $exchange
  AND instrument = $instrument
  AND ts >= make_timestamp($since_ms * 1000)
ORDER BY ts;
