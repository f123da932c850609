-- Every realized liquidation with its partition day, in partition then primary-key order.
SELECT *, strftime(ts, '%Y-%m-%d') AS _date
FROM raw_liquidations
ORDER BY exchange, instrument, _date, ts, side, price, size_base;
