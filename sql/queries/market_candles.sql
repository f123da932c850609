-- Candles of one instrument in USD, quarantined prints left out (via raw_fx_rates; USD-pegged quotes count as USD), oldest first.
-- Params: $exchange, $instrument, $since_ms (epoch ms, inclusive).
SELECT
    epoch_ms(c.ts)                                   AS time_ms,
    c.interval_s,
    c.open  * coalesce(fx.usd_per_unit, 1.0)         AS open,
    c.high  * coalesce(fx.usd_per_unit, 1.0)         AS high,
    c.low   * coalesce(fx.usd_per_unit, 1.0)         AS low,
    c.close * coalesce(fx.usd_per_unit, 1.0)         AS close,
    c.volume,
    c.taker_buy_volume,
    c.quote,
    coalesce(fx.usd_per_unit, 1.0)                   AS usd_per_quote
FROM raw_candles AS c
LEFT JOIN raw_fx_rates AS fx ON fx.quote = c.quote
WHERE c.exchange = $exchange
  AND c.instrument = $instrument
  AND c.ts >= make_timestamp($since_ms * 1000)
  AND NOT EXISTS (  -- implausible prints are kept but left out of the model (sql/quality/)
      SELECT 1 FROM raw_quarantine AS q
      WHERE q.dataset = 'candles' AND q.exchange = c.exchange AND q.instrument = c.instrument AND q.ts = c.ts
  )
  AND c.interval_s = (
      SELECT min(interval_s) FROM raw_candles
      WHERE exchange = $exchange AND instrument = $instrument
  )
ORDER BY c.ts;
