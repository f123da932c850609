"""The one reader of a market from the store: candles, open interest, funding, liquidations.

Everything that runs the model on stored data (the site's views, the backtest)
reads a market through :func:`load_market`, so they see the same arrays.
"""

from __future__ import annotations

from pipeline.markets import Market, MarketSeries
from pipeline.store.db import Store


def stored_pairs(store: Store) -> set[tuple[str, str]]:
    """(exchange, instrument) pairs with stored candles."""
    return {(r["exchange"], r["instrument"]) for r in store.query("data_extent").to_pylist()
            if r["dataset"] == "candles"}


def load_market(store: Store, market: Market) -> MarketSeries:
    ex, inst = market.candles
    oex, oinst = market.oi
    return MarketSeries(
        market=market,
        candles=store.arrays("market_candles", exchange=ex, instrument=inst, since_ms=0),
        oi=store.arrays("market_open_interest", exchange=oex, instrument=oinst, since_ms=0),
        funding=store.arrays("market_funding", exchange=ex, instrument=inst, since_ms=0),
        liquidations=store.arrays("market_liquidations", exchange=ex, instrument=inst, since_ms=0),
    )


def freshness(store: Store, series: list[MarketSeries], oi_max_age_ms: int) -> dict[str, dict]:
    """Each loaded market's ``out_market_freshness`` row (``sql/marts/``), keyed by market key, at the
    asset's now: the end of its last candle."""
    live = [s for s in series if not s.empty]
    if not live:
        return {}
    now_ms = max(int(s.candles["time_ms"][-1]) for s in live) + max(s.candle_ms for s in live)
    out = {}
    for s in live:
        (ex, inst), (oex, oinst) = s.market.candles, s.market.oi
        out[s.market.key] = store.mart("out_market_freshness", exchange=ex, instrument=inst, oi_exchange=oex,
                                       oi_instrument=oinst, now_ms=now_ms, oi_max_age_ms=oi_max_age_ms)[0]
    return out
