-- The fixed quote-currency conversions (one small unpartitioned file), in key order.
SELECT *
FROM raw_fx_rates
ORDER BY quote;
