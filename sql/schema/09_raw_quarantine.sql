-- Implausible prints kept out of the model (sql/quality/): the raw row stays, this says why.
-- Derived: recomputed after every collection, backfill and restore, never exported.
CREATE TABLE IF NOT EXISTS raw_quarantine (
    exchange    VARCHAR   NOT NULL,
    instrument  VARCHAR   NOT NULL,
    dataset     VARCHAR   NOT NULL CHECK (dataset IN ('candles', 'open_interest')),
    ts          TIMESTAMP NOT NULL,
    reason      VARCHAR   NOT NULL,
    PRIMARY KEY (exchange, instrument, dataset, ts)
);
