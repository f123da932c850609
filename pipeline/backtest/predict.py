"""Prediction: the model's book at each evaluation point -> clusters, per point and per window (pure)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.backtest.cases import HORIZONS_H, HOUR_MS, MIN_CASES, candle_interval_ms, eval_times, price_paths
from pipeline.model.windows import price_edges as window_edges
from pipeline.model.windows import windows_for_span


def price_edges(price: float, *, bins: int, span_pct: float) -> np.ndarray:
    """Bin edges centred on ``price``, +/- ``span_pct`` %, so bin width is constant in % over time."""
    return price * (1.0 + np.linspace(-span_pct, span_pct, bins + 1) / 100.0)


def clusters_from_grid(
    grid: np.ndarray, edges_per_point: Sequence[np.ndarray], prices: np.ndarray,
    find_clusters: Callable[..., list], *, top: int,
) -> list[list]:
    """``grid`` is (2, m, k) per the model contract; one find_clusters call per column."""
    out = []
    for j in range(grid.shape[1]):
        p = prices[j]
        if not np.isfinite(p):
            out.append([])
            continue
        col = grid[0, j] + grid[1, j]
        out.append(list(find_clusters(col, edges_per_point[j], float(p), top=top)) if col.any() else [])
    return out


def geometric_edges(prices: np.ndarray, *, bins: int, span_pct: float) -> np.ndarray:
    """One set of bin edges for every evaluation point: geometric, so a bin is the same
    width *in %* at every price, covering each point's +/- ``span_pct`` % window.

    ``bins`` is the number of bins across one point's window (the site's
    ``price_bins``), so clusters have the resolution a reader sees.
    """
    p = np.asarray(prices, float)
    p = p[np.isfinite(p) & (p > 0)]
    ratio = 1.0 + 2.0 * span_pct / 100.0 / bins
    lo = p.min() * (1 - span_pct / 100.0) / ratio
    hi = p.max() * (1 + span_pct / 100.0) * ratio
    k = int(math.ceil(math.log(hi / lo) / math.log(ratio)))
    return lo * ratio ** np.arange(k + 1)


def predict_clusters(
    result: Any, eval_ms: np.ndarray, prices: np.ndarray, *, bins: int = 400, span_pct: float = 15.0,
    top: int = 5, find_clusters: Callable[..., list] | None = None, chunk: int = 256,
) -> list[list]:
    """Clusters at each evaluation point from a ``model.ModelResult``.

    Column ``j`` of ``result.grid`` at ``eval_ms[j]`` is the book after the last
    candle that opened before the point (the same candle whose close is the
    reference price), cut to +/- ``span_pct`` % around the price and handed to
    ``levels.find_clusters``. Columns are computed in chunks to bound memory.
    """
    if find_clusters is None:
        from pipeline.model.levels import find_clusters
    ev = np.asarray(eval_ms, np.int64)
    prices = np.asarray(prices, float)
    out: list[list] = [[] for _ in range(ev.size)]
    ok = np.flatnonzero(np.isfinite(prices) & (prices > 0))
    if ok.size == 0:
        return out
    edges = geometric_edges(prices[ok], bins=bins, span_pct=span_pct)
    for s0 in range(0, ok.size, chunk):
        idx = ok[s0 : s0 + chunk]
        g = result.grid(ev[idx], edges)
        for c, j in enumerate(idx):
            p = prices[j]
            i0 = max(int(np.searchsorted(edges, p * (1 - span_pct / 100.0), side="right")) - 1, 0)
            i1 = min(int(np.searchsorted(edges, p * (1 + span_pct / 100.0), side="left")), edges.size - 1)
            col = g[0, c, i0:i1] + g[1, c, i0:i1]
            if col.any():
                out[j] = list(find_clusters(col, edges[i0 : i1 + 1], float(p), top=top))
    return out


@dataclass(frozen=True)
class Settings:
    """Backtest settings (shown on the accuracy page)."""

    horizons_h: tuple[int, ...] = HORIZONS_H
    step_h: float = 1.0
    warmup_h: float = 6.0
    top_k: int = 3  # clusters scored per side and point
    price_bins: int = 400
    span_pct: float = 15.0  # the price window around each point that clusters are searched in
    min_cases: int = MIN_CASES
    bands_pct: tuple[float, ...] = (0.25, 0.5, 1.0)
    max_eval_points: int = 2000  # longer histories widen the step (whole hours) to bound the cost
    window_max_points: int = 720  # per-window clusters cost one book per point: thinned evenly beyond this

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def effective_step_h(time_ms: np.ndarray, settings: "Settings") -> float:
    """The evaluation step: ``settings.step_h``, widened to whole hours so that at most
    ``max_eval_points`` points cover the history (cost grows with points x variants)."""
    t = np.asarray(time_ms, np.int64)
    if t.size < 2:
        return float(settings.step_h)
    hours = (int(t[-1]) - int(t[0])) / HOUR_MS - settings.warmup_h
    return float(max(settings.step_h, math.ceil(max(hours, 0.0) / max(settings.max_eval_points, 1))))


def _model_inputs(candles: Mapping[str, np.ndarray]) -> dict:
    def col(name):
        v = candles.get(name)
        return None if v is None else np.asarray(v, float)

    return {"volume": col("volume"), "taker_buy_volume": col("taker_buy_volume")}


def _run_model(model, candles, oi_usd, params, sl=slice(None)):
    kw = {k: (None if v is None else v[sl]) for k, v in _model_inputs(candles).items()}
    return model.run(
        np.asarray(candles["time_ms"], np.int64)[sl], np.asarray(candles["open"], float)[sl],
        np.asarray(candles["high"], float)[sl], np.asarray(candles["low"], float)[sl],
        np.asarray(candles["close"], float)[sl], np.asarray(oi_usd, float)[sl], params, **kw,
    )


def window_clusters(
    result: Any, candles: Mapping[str, np.ndarray], eval_ms: np.ndarray, prices: np.ndarray,
    timeframes_ms: Mapping[str, int], *, points: np.ndarray, bins: int = 400,
    top: int = 5, find_clusters: Callable[..., list] | None = None,
) -> dict[str, list[list]]:
    """Clusters of every timeframe window at ``points``, drawn as the site draws them.

    The site runs the model once and lets a window change only the price axis
    (:mod:`pipeline.model.windows`: linear bins over the window's padded range).
    Windows that fit entirely before the point are used, plus the first longer
    one as a partial window from the first candle (as the site does). ``result.book(t - 1)`` is the book the grid column ending at ``t``
    shows. Returns {timeframe: clusters per evaluation point} ([] where unused).
    """
    if find_clusters is None:
        from pipeline.model.levels import find_clusters
    t = np.asarray(candles["time_ms"], np.int64)
    high, low = np.asarray(candles["high"], float), np.asarray(candles["low"], float)
    ev = np.asarray(eval_ms, np.int64)
    order = sorted(timeframes_ms, key=timeframes_ms.__getitem__)
    out: dict[str, list[list]] = {tf: [[] for _ in range(ev.size)] for tf in order}
    if t.size == 0:
        return out
    for j in points:
        p = prices[j]
        if not np.isfinite(p):
            continue
        end = int(ev[j])
        windows = windows_for_span(timeframes_ms, end - int(t[0]))
        b = result.book(end - 1)
        bp, bv = b["price"], b["notional_usd"]
        i_end = int(np.searchsorted(t, end, side="left"))
        for tf, partial in windows:
            t0 = int(t[0]) if partial else end - int(timeframes_ms[tf])
            i_start = int(np.searchsorted(t, t0, side="left"))
            if i_end <= i_start:
                continue
            edges = window_edges(tf, [np.nanmin(low[i_start:i_end])], [np.nanmax(high[i_start:i_end])], bins)
            col, _ = np.histogram(bp, bins=edges, weights=bv)
            if col.any():
                out[tf][j] = list(find_clusters(col, edges, float(p), top=top))
    return out


def _evaluation_grid(candles: Mapping[str, np.ndarray], settings: Settings):
    """Candle times, candle interval, evaluation step (h), evaluation times and the price paths after them."""
    t = np.asarray(candles["time_ms"], np.int64)
    iv = candle_interval_ms(t)
    step_h = effective_step_h(t, settings)
    ev = eval_times(t, step_ms=int(step_h * HOUR_MS), warmup_ms=int(settings.warmup_h * HOUR_MS),
                    interval_ms=iv)
    paths = price_paths(t, candles["high"], candles["low"], candles["close"], ev,
                        horizons_h=settings.horizons_h, interval_ms=iv)
    return t, iv, step_h, ev, paths


