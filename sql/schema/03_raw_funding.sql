-- Funding rate per funding event (rate per interval as a fraction, e.g. 0.0001 = 0.01 %).
CREATE TABLE IF NOT EXISTS raw_funding (
    exchange    VARCHAR   NOT NULL,
    instrument  VARCHAR   NOT NULL,
    ts          TIMESTAMP NOT NULL,
    rate        DOUBLE    NOT NULL,
    PRIMARY KEY (exchange, instrument, ts)
);
