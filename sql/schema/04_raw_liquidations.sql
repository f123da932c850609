-- Realized liquidation orders where an exchange publishes them (side = the liquidated position: long/short).
CREATE TABLE IF NOT EXISTS raw_liquidations (
    exchange      VARCHAR   NOT NULL,
    instrument    VARCHAR   NOT NULL,
    ts            TIMESTAMP NOT NULL,
    side          VARCHAR   NOT NULL CHECK (side IN ('long', 'short')),
    price         DOUBLE    NOT NULL CHECK (price > 0),
    size_base     DOUBLE    NOT NULL,
    notional_usd  DOUBLE    NOT NULL,
    PRIMARY KEY (exchange, instrument, ts, side, price, size_base)
);
