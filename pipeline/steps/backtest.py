"""Step: one asset's backtest on stored data (load its markets -> :mod:`pipeline.backtest` -> JSON-ready dict).

Used by the site build (accuracy page and sections) and by ``liqmap backtest``.
"""

from __future__ import annotations

from typing import Any

from pipeline import registry
from pipeline.backtest import market as bt
from pipeline.backtest.predict import BacktestSettings
from pipeline.backtest.variants import SCORE_TEXT
from pipeline.markets import MarketSeries, markets_for
from pipeline.model import book
from pipeline.model.params import ModelParams
from pipeline.store import sample
from pipeline.store.series import load_market, stored_pairs

METHOD = {
    "baseline": "distance in units of trailing 24 h realised volatility, side- and horizon-matched; "
                "other evaluation points, purged of those whose horizon overlaps",
    "intervals": "block bootstrap over days (blocks at least one horizon long) resampling whole evaluation "
                 "points, their hits and the reference points of their baseline together",
    "placebo": "the same pipeline with the OI increments block-shuffled (whole days), pooled over permutations",
    "naive": "recent swing high/low (4 h to 1 week) and round numbers, at the distance nearest each cluster",
    "score": SCORE_TEXT,
}


def _header(asset: registry.Asset, params: ModelParams) -> dict[str, Any]:
    return {
        "asset": asset.id, "name": asset.name, "symbol": asset.symbol,
        "params": {"leverage": list(params.leverage), "weights": list(params.weights),
                   "side_split": params.side_split, "fade_half_life_hours": params.fade_half_life_hours,
                   "oi_change": params.oi_change},
        "method": METHOD, "markets": [], "variants": None,
    }


def run_for_arrays(asset: registry.Asset, params: ModelParams, candles: dict, oi_per_candle, *,
                   key: str, title: str, candles_from: str, oi_from: str, is_sample: bool = False,
                   liquidations: dict | None = None, variants: bool = False,
                   settings: BacktestSettings | None = None) -> dict:
    """One market given as arrays (e.g. a user's files): the same JSON shape as :func:`run_for_asset`."""
    settings = settings or BacktestSettings()
    out = _header(asset, params)
    tfs = {tf: registry.TIMEFRAMES_MS[tf] for tf in asset.timeframes}
    res = bt.backtest_market(candles, oi_per_candle, params, settings=settings, timeframes_ms=tfs,
                             liquidations=liquidations)
    out["markets"].append(bt.to_jsonable({"key": key, "title": title, "is_sample": is_sample,
                                          "candles_from": candles_from, "oi_from": oi_from, **res}))
    if variants:
        out["variants"] = bt.to_jsonable({"market": key, **bt.run_variants(candles, oi_per_candle, params,
                                                                            settings=settings)})
    return out


def run_for_asset(store, registry_: registry.Registry, asset: registry.Asset | str, *,
                  variants: bool = False, settings: BacktestSettings | None = None) -> dict:
    """Backtest every stored market of ``asset``; a JSON-ready dict.

    Variants (``variants=True``; ``liqmap backtest --variants``, not the site build: they
    multiply the cost by ~27) run on the market with the most evaluation points only.
    Loads the bundled sample first when the store is empty.
    """
    if isinstance(asset, str):
        asset = registry_.get(asset)
    if not store.read_only:
        sample.load_if_empty(store)
    params = ModelParams.from_asset(asset, registry_.settings_for(asset))
    series = [load_market(store, market) for market in markets_for(asset, stored_pairs(store))]
    return run_for_series(asset, params, series, variants=variants, settings=settings)


def run_for_series(asset: registry.Asset, params: ModelParams, series: list[MarketSeries], *,
                   variants: bool = False, settings: BacktestSettings | None = None) -> dict:
    """:func:`run_for_asset` on markets already read from the store (``store.series.load_market``)."""
    settings = settings or BacktestSettings()
    out = _header(asset, params)
    best = None
    for s in series:
        market, candles = s.market, s.candles
        if candles["time_ms"].size < 2:
            continue
        oi_usd = book.market_oi(candles, s.oi)
        liq = s.liquidations if s.liquidations["time_ms"].size else None
        one = run_for_arrays(asset, params, candles, oi_usd, key=market.key, title=market.title,
                             is_sample=market.is_sample, candles_from=f"{market.candles[0]} {market.candles[1]}",
                             oi_from=f"{market.oi[0]} {market.oi[1]}", liquidations=liq, settings=settings)
        m = one["markets"][0]
        out["markets"].append(m)
        n = m["range"]["eval_points"]
        if best is None or n > best[0]:
            best = (n, market, candles, oi_usd)
    if variants and best is not None:
        _, market, candles, oi_usd = best
        v = bt.run_variants(candles, oi_usd, params, settings=settings)
        out["variants"] = bt.to_jsonable({"market": market.key, **v})
    return out
