-- Every candle with its partition day, in partition then primary-key order (deterministic export).
SELECT *, strftime(ts, '%Y-%m-%d') AS _date
FROM raw_candles
ORDER BY exchange, instrument, _date, interval_s, ts;
