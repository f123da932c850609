-- One market's freshness: the extent of its candles and open interest, and its open interest now and
-- 24 h earlier (the freshness table and the home page's 24 h change), as the model sees them (prep_*).
-- "At t" is the last observation before t, and none when that one is older than $oi_max_age_ms (a
-- stopped feed is a gap, not a flat line). Params: $exchange, $instrument (candles), $oi_exchange,
-- $oi_instrument (open interest), $now_ms (the asset's now: the end of its last candle), $oi_max_age_ms.
WITH c AS (
    SELECT min(time_ms) AS first_ms, max(time_ms) AS last_ms, count(*) AS candles, max(interval_s) AS candle_s
    FROM prep_candles
    WHERE exchange = $exchange AND instrument = $instrument
),
o AS (
    SELECT time_ms, oi_usd
    FROM prep_open_interest
    WHERE exchange = $oi_exchange AND instrument = $oi_instrument
)
SELECT
    c.*,
    (SELECT min(time_ms) FROM o)                                              AS oi_first_ms,
    (SELECT max(time_ms) FROM o)                                              AS oi_last_ms,
    (SELECT arg_max(oi_usd, time_ms) FROM o
     WHERE isfinite(oi_usd) AND time_ms <= $now_ms AND $now_ms + 1 - time_ms <= $oi_max_age_ms) AS oi_usd_now,
    (SELECT arg_max(oi_usd, time_ms) FROM o
     WHERE isfinite(oi_usd) AND time_ms <= $now_ms - 86400000
       AND $now_ms - 86400000 + 1 - time_ms <= $oi_max_age_ms)                AS oi_usd_day_ago
FROM c;
