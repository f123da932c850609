"""Step: one asset's backtest on stored data (load its markets -> :mod:`pipeline.backtest` -> JSON-ready dict).

Used by the site build (accuracy page and sections) and by ``liqmap backtest``.
"""

from __future__ import annotations

from typing import Any

from pipeline import registry
from pipeline.backtest import market as bt
from pipeline.backtest.predict import Settings
from pipeline.backtest.variants import SCORE_TEXT
from pipeline.markets import markets_for
from pipeline.model import book
from pipeline.model.params import ModelParams
from pipeline.store import sample
from pipeline.store.series import load_market, stored_pairs


def run_for_asset(store, registry_: registry.Registry, asset: registry.Asset | str, *,
                  variants: bool = True, settings: Settings | None = None) -> dict:
    """Backtest every stored market of ``asset``; a JSON-ready dict.

    Variants are run on the market with the most evaluation points only (they
    multiply the cost by ~27 and the longest history is the best evidence).
    Loads the bundled sample first when the store is empty.
    """
    settings = settings or Settings()
    if isinstance(asset, str):
        asset = registry_.get(asset)
    if not store.read_only:
        sample.load_if_empty(store)
    params = ModelParams.from_asset(asset, registry_.settings_for(asset))
    tfs = {tf: registry.TIMEFRAMES_MS[tf] for tf in asset.timeframes}
    out: dict[str, Any] = {
        "asset": asset.id, "name": asset.name, "symbol": asset.symbol,
        "params": {"leverage": list(params.leverage), "weights": list(params.weights),
                   "side_split": params.side_split, "fade_half_life_hours": params.fade_half_life_hours},
        "method": {"baseline": "distance-, side- and horizon-matched, time-randomised (leave-one-out)",
                   "score": SCORE_TEXT},
        "markets": [], "variants": None,
    }
    best = None
    for market in markets_for(asset, stored_pairs(store)):
        s = load_market(store, market)
        candles = s.candles
        if candles["time_ms"].size < 2:
            continue
        oi_usd = book.market_oi(candles, s.oi)
        liq = s.liquidations if s.liquidations["time_ms"].size else None
        res = bt.backtest_market(candles, oi_usd, params, settings=settings, timeframes_ms=tfs, liquidations=liq)
        res = {"key": market.key, "title": market.title, "is_sample": market.is_sample,
               "candles_from": f"{market.candles[0]} {market.candles[1]}",
               "oi_from": f"{market.oi[0]} {market.oi[1]}", **res}
        out["markets"].append(bt.to_jsonable(res))
        n = res["range"]["eval_points"]
        if best is None or n > best[0]:
            best = (n, market, candles, oi_usd)
    if variants and best is not None:
        _, market, candles, oi_usd = best
        v = bt.run_variants(candles, oi_usd, params, settings=settings)
        out["variants"] = bt.to_jsonable({"market": market.key, **v})
    return out
