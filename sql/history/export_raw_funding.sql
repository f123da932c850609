-- Every funding event with its partition day, in partition then primary-key order.
SELECT *, strftime(ts, '%Y-%m-%d') AS _date
FROM raw_funding
ORDER BY exchange, instrument, _date, ts;
