"""Which markets an asset page is built from: live markets with candles; the sample only without them."""

from __future__ import annotations

from pipeline import registry
from pipeline.markets import SAMPLE_MARKET, markets_for

REG = registry.load()


def test_live_markets_replace_the_sample():
    btc = REG.get("btc")
    ex, inst = next(iter(btc.instruments.items()))
    assert markets_for(btc, {SAMPLE_MARKET.candles}) == [SAMPLE_MARKET]
    live = markets_for(btc, {SAMPLE_MARKET.candles, (ex, inst)})
    # The sample's OI is OKX's total: next to live data it would count positions twice.
    assert [m.key for m in live] == [ex] and not any(m.is_sample for m in live)
    assert markets_for(REG.get("eth"), {SAMPLE_MARKET.candles}) == []


def test_titles_use_the_venues_spelling():
    btc = REG.get("btc")
    stored = {(ex, inst) for ex, inst in btc.instruments.items()}
    titles = {m.key: m.title for m in markets_for(btc, stored)}
    assert titles["dydx"] == "dYdX BTC-USD" and titles["okx"] == "OKX BTC-USDT-SWAP"
