-- Every open-interest observation with its partition day, in partition then primary-key order.
SELECT *, strftime(ts, '%Y-%m-%d') AS _date
FROM raw_open_interest
ORDER BY exchange, instrument, _date, ts;
