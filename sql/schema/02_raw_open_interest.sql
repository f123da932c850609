-- Open interest snapshots (ts = observation time, UTC); base units and/or USD.
CREATE TABLE IF NOT EXISTS raw_open_interest (
    exchange    VARCHAR   NOT NULL,
    instrument  VARCHAR   NOT NULL,
    ts          TIMESTAMP NOT NULL,
    oi_base     DOUBLE,
    oi_usd      DOUBLE,
    PRIMARY KEY (exchange, instrument, ts),
    CHECK (oi_base IS NOT NULL OR oi_usd IS NOT NULL)
);
