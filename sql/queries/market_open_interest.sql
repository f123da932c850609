-- Open interest of one instrument in USD as the model sees it (prep_open_interest: quarantined prints
-- left out, base units valued at the candle close), oldest first. Params: $exchange, $instrument, $since_ms.
SELECT time_ms, oi_usd, oi_base
FROM prep_open_interest
WHERE exchange = $exchange
  AND instrument = $instrument
  AND ts >= make_timestamp($since_ms * 1000)
ORDER BY ts;
