-- Holes the last collection run could not fill, per source, with why (shown on the pages).
-- Derived: rebuilt after every run from the raw tables and raw_source_runs, never exported.
CREATE TABLE IF NOT EXISTS raw_gaps (
    exchange    VARCHAR   NOT NULL,
    instrument  VARCHAR   NOT NULL,
    dataset     VARCHAR   NOT NULL,
    gap_from    TIMESTAMP NOT NULL,  -- last row before the hole (or where a failed fetch began)
    gap_to      TIMESTAMP NOT NULL,  -- first row after the hole (or when the failed fetch ran)
    reason      VARCHAR   NOT NULL,
    run_id      VARCHAR   NOT NULL,  -- the run that last looked at it
    PRIMARY KEY (exchange, instrument, dataset, gap_from)
);
