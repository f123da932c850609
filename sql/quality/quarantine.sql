-- Fill raw_quarantine with implausible prints (the raw rows stay; the market_* queries skip these).
--  * Open interest that departs from every neighbour it has (both, or the one an end row has)
--    by more than $oi_factor, up or down, in base units or in USD; zero next to non-zero counts.
--    A level shift is not a spike: its first print agrees with the next one.
--  * A candle that reaches more than $candle_factor beyond every neighbour (its high over their
--    highest high, or their lowest low over its low), unless the asset's other venues show the
--    same at that time (a market-wide crash is news, not a bad print). Compared in USD.
-- Params: $oi_factor, $candle_factor. Relation asset_venues(asset, exchange, instrument).
INSERT INTO raw_quarantine BY NAME
WITH c AS (
    SELECT c.exchange, c.instrument, c.interval_s, c.ts,
           c.high * coalesce(fx.usd_per_unit, 1.0) AS high,
           c.low  * coalesce(fx.usd_per_unit, 1.0) AS low
    FROM raw_candles AS c
    LEFT JOIN raw_fx_rates AS fx ON fx.quote = c.quote
),
c_nb AS (
    SELECT *, lag(high) OVER w AS ph, lead(high) OVER w AS nh, lag(low) OVER w AS pl, lead(low) OVER w AS nl
    FROM c
    WINDOW w AS (PARTITION BY exchange, instrument, interval_s ORDER BY ts)
),
c_dep AS (
    SELECT *, greatest(high / greatest(coalesce(ph, nh), coalesce(nh, ph)),
                       least(coalesce(pl, nl), coalesce(nl, pl)) / low) AS d
    FROM c_nb
    WHERE ph IS NOT NULL OR nh IS NOT NULL
),
c_suspect AS (
    SELECT * FROM c_dep WHERE d > $candle_factor
),
c_peers AS (
    SELECT s.exchange, s.instrument, s.ts, median(p.high) AS peer_high, median(p.low) AS peer_low, count(*) AS n_peers
    FROM c_suspect AS s
    JOIN asset_venues AS a ON a.exchange = s.exchange AND a.instrument = s.instrument
    JOIN asset_venues AS b ON b.asset = a.asset AND b.exchange <> a.exchange
    JOIN c AS p ON p.exchange = b.exchange AND p.instrument = b.instrument AND p.ts = s.ts
    GROUP BY ALL
),
candles AS (
    SELECT s.exchange, s.instrument, 'candles' AS dataset, s.ts,
           printf('candle reaches %.1fx beyond its neighbours', s.d)
           || CASE WHEN p.n_peers IS NULL THEN ' (no other venue at that time)'
                   ELSE printf(' and %d other venue(s) at that time', p.n_peers) END AS reason,
           s.d
    FROM c_suspect AS s
    LEFT JOIN c_peers AS p USING (exchange, instrument, ts)
    WHERE p.n_peers IS NULL OR greatest(s.high / p.peer_high, p.peer_low / s.low) > $candle_factor
    QUALIFY row_number() OVER (PARTITION BY s.exchange, s.instrument, s.ts ORDER BY s.d DESC) = 1
),
o_nb AS (
    SELECT exchange, instrument, ts, oi_base, oi_usd,
           lag(oi_base) OVER w AS pb, lead(oi_base) OVER w AS nb,
           lag(oi_usd) OVER w AS pu, lead(oi_usd) OVER w AS nu
    FROM raw_open_interest
    WINDOW w AS (PARTITION BY exchange, instrument ORDER BY ts)
),
o_dep AS (
    -- departure of each measure from every neighbour it has: >1 above them all, or below them all
    SELECT *,
        greatest(
            oi_base / greatest(coalesce(pb, nb), coalesce(nb, pb)),
            CASE WHEN oi_base > 0 THEN least(coalesce(pb, nb), coalesce(nb, pb)) / oi_base
                 WHEN oi_base = 0 AND least(coalesce(pb, nb), coalesce(nb, pb)) > 0 THEN 'infinity'::DOUBLE END,
            oi_usd / greatest(coalesce(pu, nu), coalesce(nu, pu)),
            CASE WHEN oi_usd > 0 THEN least(coalesce(pu, nu), coalesce(nu, pu)) / oi_usd
                 WHEN oi_usd = 0 AND least(coalesce(pu, nu), coalesce(nu, pu)) > 0 THEN 'infinity'::DOUBLE END
        ) AS d
    FROM o_nb
),
oi AS (
    SELECT exchange, instrument, 'open_interest' AS dataset, ts,
           CASE WHEN isinf(d) THEN 'open interest of zero between non-zero prints'
                ELSE printf('open interest %.1fx away from its neighbours', d) END AS reason,
           d
    FROM o_dep
    WHERE d > $oi_factor
)
SELECT exchange, instrument, dataset, ts, reason FROM candles
UNION ALL
SELECT exchange, instrument, dataset, ts, reason FROM oi;
