-- Open interest of one instrument in USD, oldest first, quarantined prints (sql/quality/) left out. Where only base units
-- are stored, they are valued at the close of the latest candle at or before
-- the observation (ASOF join on the same exchange's candles).
-- Params: $exchange, $instrument, $since_ms.
WITH candles AS (
    SELECT c.ts, c.close * coalesce(fx.usd_per_unit, 1.0) AS close_usd
    FROM raw_candles AS c
    LEFT JOIN raw_fx_rates AS fx ON fx.quote = c.quote
    WHERE c.exchange = $exchange AND c.instrument = $instrument
      AND c.ts NOT IN (SELECT ts FROM raw_quarantine
                       WHERE dataset = 'candles' AND exchange = $exchange AND instrument = $instrument)
)
SELECT
    epoch_ms(o.ts)                                   AS time_ms,
    coalesce(o.oi_usd, o.oi_base * c.close_usd)      AS oi_usd,
    o.oi_base
FROM raw_open_interest AS o
ASOF LEFT JOIN candles AS c ON o.ts >= c.ts
WHERE o.exchange = $exchange
  AND o.instrument = $instrument
  AND o.ts >= make_timestamp($since_ms * 1000)
  AND o.ts NOT IN (SELECT ts FROM raw_quarantine
                   WHERE dataset = 'open_interest' AND exchange = $exchange AND instrument = $instrument)
ORDER BY o.ts;
