-- The prep layer: raw rows as the model sees them (temporary views made on every connection, read-only
-- ones included, so no stored file needs migrating). Candles and open interest in USD, the
-- implausible prints of raw_quarantine (sql/quality/) left out, one candle interval per
-- instrument (the finest stored). The market_* queries and the out_* marts read these views,
-- so the page's figures and the model agree by construction.
CREATE OR REPLACE TEMP VIEW prep_candles AS
SELECT * EXCLUDE (finest) FROM (
    SELECT
        c.exchange,
        c.instrument,
        c.ts,
        epoch_ms(c.ts)                                   AS time_ms,
        c.interval_s,
        c.open  * coalesce(fx.usd_per_unit, 1.0)         AS open,
        c.high  * coalesce(fx.usd_per_unit, 1.0)         AS high,
        c.low   * coalesce(fx.usd_per_unit, 1.0)         AS low,
        c.close * coalesce(fx.usd_per_unit, 1.0)         AS close,
        c.volume,
        c.taker_buy_volume,
        c.quote,
        coalesce(fx.usd_per_unit, 1.0)                   AS usd_per_quote,
        min(c.interval_s) OVER (PARTITION BY c.exchange, c.instrument) AS finest
    FROM raw_candles AS c
    LEFT JOIN raw_fx_rates AS fx ON fx.quote = c.quote
    WHERE NOT EXISTS (
        SELECT 1 FROM raw_quarantine AS q
        WHERE q.dataset = 'candles' AND q.exchange = c.exchange AND q.instrument = c.instrument AND q.ts = c.ts
    )
)
WHERE interval_s = finest;

-- Open interest in USD; where only base units are stored they are valued at the close of the
-- latest (unquarantined) candle at or before the observation on the same instrument.
CREATE OR REPLACE TEMP VIEW prep_open_interest AS
SELECT
    o.exchange,
    o.instrument,
    o.ts,
    epoch_ms(o.ts)                                   AS time_ms,
    coalesce(o.oi_usd, o.oi_base * c.close)          AS oi_usd,
    o.oi_base
FROM raw_open_interest AS o
ASOF LEFT JOIN prep_candles AS c
    ON o.exchange = c.exchange AND o.instrument = c.instrument AND o.ts >= c.ts
WHERE NOT EXISTS (
    SELECT 1 FROM raw_quarantine AS q
    WHERE q.dataset = 'open_interest' AND q.exchange = o.exchange AND q.instrument = o.instrument AND q.ts = o.ts
);
