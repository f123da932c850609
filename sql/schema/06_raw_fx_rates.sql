-- Fixed conversion of a quote currency to USD, with where the rate comes from.
CREATE TABLE IF NOT EXISTS raw_fx_rates (
    quote         VARCHAR NOT NULL PRIMARY KEY,
    usd_per_unit  DOUBLE  NOT NULL CHECK (usd_per_unit > 0),
    source        VARCHAR NOT NULL
);
