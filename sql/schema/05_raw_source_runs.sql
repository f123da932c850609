-- One row per (run, source, dataset): what a collection run asked for and what it got.
CREATE TABLE IF NOT EXISTS raw_source_runs (
    run_id         VARCHAR   NOT NULL,
    asset          VARCHAR   NOT NULL,
    exchange       VARCHAR   NOT NULL,
    instrument     VARCHAR   NOT NULL,
    dataset        VARCHAR   NOT NULL,  -- candles, open_interest, funding, liquidations, sample
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP NOT NULL,
    status         VARCHAR   NOT NULL CHECK (status IN ('ok', 'partial', 'error', 'blocked', 'unsupported')),
    requests       INTEGER   NOT NULL DEFAULT 0,
    rows_received  INTEGER   NOT NULL DEFAULT 0,
    rows_stored    INTEGER   NOT NULL DEFAULT 0,
    rows_rejected  INTEGER   NOT NULL DEFAULT 0,
    message        VARCHAR,
    PRIMARY KEY (run_id, exchange, instrument, dataset)
);
