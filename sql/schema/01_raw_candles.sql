-- Candles as the exchange published them (prices in `quote` currency; ts = candle open, UTC).
CREATE TABLE IF NOT EXISTS raw_candles (
    exchange          VARCHAR   NOT NULL,
    instrument        VARCHAR   NOT NULL,
    interval_s        INTEGER   NOT NULL,
    ts                TIMESTAMP NOT NULL,
    open              DOUBLE    NOT NULL,
    high              DOUBLE    NOT NULL,
    low               DOUBLE    NOT NULL,
    close             DOUBLE    NOT NULL,
    volume            DOUBLE,            -- base units
    taker_buy_volume  DOUBLE,            -- base units, where the exchange gives it
    quote             VARCHAR   NOT NULL, -- USD, USDT, USDC, JPY ...
    PRIMARY KEY (exchange, instrument, interval_s, ts),
    CHECK (low > 0 AND high >= low)
);
